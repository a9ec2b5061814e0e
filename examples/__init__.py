"""Recipes: producing Nexq tasks from a web app or a script (see README,
"Enqueue from your app"). Every recipe is run by tests/examples."""
