from django.urls import path

from examples.django_site import views

urlpatterns = [
    path("signup", views.signup),
    path("tasks/<str:task_id>", views.task_status),
]
