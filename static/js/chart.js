// Small canvas charts drawn by hand: a live line chart (per second) and a
// bar chart (per minute). Colours come from CSS custom properties, so they
// follow light and dark mode; the canvas is sized for the device pixel ratio.

const dark = window.matchMedia('(prefers-color-scheme: dark)');

class CanvasChart {
  constructor(canvas, drawFn) {
    this.canvas = canvas;
    this.drawFn = drawFn;
    this.data = null;
    this.frame = 0;
    this.observer = new ResizeObserver(() => this.schedule());
    this.observer.observe(canvas);
    this.onScheme = () => this.schedule();
    dark.addEventListener('change', this.onScheme);
  }

  set(data) {
    this.data = data;
    this.schedule();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  draw() {
    const c = this.canvas;
    const w = c.clientWidth;
    const hgt = c.clientHeight;
    if (!w || !hgt) return;
    const ratio = window.devicePixelRatio || 1;
    if (c.width !== Math.round(w * ratio) || c.height !== Math.round(hgt * ratio)) {
      c.width = Math.round(w * ratio);
      c.height = Math.round(hgt * ratio);
    }
    const ctx = c.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, hgt);
    const css = getComputedStyle(c);
    const color = (name) => css.getPropertyValue(name).trim() || '#888';
    ctx.font = `11px ${css.fontFamily}`;
    this.drawFn(ctx, w, hgt, this.data, color);
  }

  destroy() {
    this.observer.disconnect();
    dark.removeEventListener('change', this.onScheme);
    cancelAnimationFrame(this.frame);
  }
}

/** A round axis for values up to `v`: {max, ticks} with 3 to 5 even steps. */
function niceScale(v) {
  if (!(v > 0)) return { max: 1, ticks: 4 };
  const raw = v / 4;
  const p = 10 ** Math.floor(Math.log10(raw));
  let step = 10 * p;
  for (const m of [1, 2, 5]) {
    if (m * p * 5 >= v) {
      step = m * p;
      break;
    }
  }
  const ticks = Math.max(3, Math.ceil(v / step - 1e-9));
  return { max: step * ticks, ticks };
}

function tickLabel(v) {
  if (v === 0) return '0';
  if (v < 1) return v.toFixed(2).replace(/0+$/, '');
  if (v >= 1000) return `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)}k`;
  return String(Math.round(v * 10) / 10);
}

const PAD = { left: 40, right: 10, top: 10, bottom: 22 };

function axes(ctx, w, hgt, scale, color) {
  const { max, ticks } = scale;
  const plotH = hgt - PAD.top - PAD.bottom;
  ctx.strokeStyle = color('--chart-grid');
  ctx.fillStyle = color('--chart-text');
  ctx.lineWidth = 1;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (let i = 0; i <= ticks; i++) {
    const y = Math.round(PAD.top + plotH - (plotH * i) / ticks) + 0.5;
    ctx.beginPath();
    ctx.moveTo(PAD.left, y);
    ctx.lineTo(w - PAD.right, y);
    ctx.stroke();
    ctx.fillText(tickLabel((max * i) / ticks), PAD.left - 6, y);
  }
}

/**
 * Live per-second chart. data: {now, window (s), series: [{values:[{t, v}], color: '--css-var',
 * fill, dots}], step (s between time labels, optional)}
 */
export function lineChart(canvas) {
  return new CanvasChart(canvas, (ctx, w, hgt, data, color) => {
    if (!data) return;
    const { now, window: span, series } = data;
    const x0 = now - span;
    let max = 0;
    for (const s of series) for (const p of s.values) if (p.t >= x0) max = Math.max(max, p.v);
    const scale = niceScale(max);
    max = scale.max;
    axes(ctx, w, hgt, scale, color);
    const plotW = w - PAD.left - PAD.right;
    const plotH = hgt - PAD.top - PAD.bottom;
    const X = (t) => PAD.left + ((t - x0) / span) * plotW;
    const Y = (v) => PAD.top + plotH - (v / max) * plotH;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    ctx.fillStyle = color('--chart-text');
    const step = data.step ?? (span >= 120 ? 60 : 30);
    const ago = (s) => (s >= 3600 && s % 3600 === 0 ? `${s / 3600} h` : s >= 60 ? `${Math.round(s / 60)} min` : `${s} s`);
    for (let s = span; s >= 0; s -= step) {
      ctx.fillText(s === 0 ? 'now' : `−${ago(s)}`, Math.min(Math.max(X(now - s), PAD.left + 14), w - PAD.right - 12), hgt - PAD.bottom + 6);
    }
    ctx.save();
    ctx.beginPath();
    ctx.rect(PAD.left, PAD.top - 2, plotW, plotH + 4);
    ctx.clip();
    for (const s of series) {
      const pts = s.values.filter((p) => p.t >= x0 - 2);
      const stroke = color(s.color);
      if (s.dots) {
        // Sparse series (a point per interval, maybe one): each point shows.
        ctx.fillStyle = stroke;
        for (const p of pts) {
          ctx.beginPath();
          ctx.arc(X(p.t), Y(p.v), 3, 0, 2 * Math.PI);
          ctx.fill();
        }
      }
      if (pts.length < 2) continue;
      if (s.fill) {
        ctx.beginPath();
        ctx.moveTo(X(pts[0].t), Y(0));
        for (const p of pts) ctx.lineTo(X(p.t), Y(p.v));
        ctx.lineTo(X(pts[pts.length - 1].t), Y(0));
        ctx.closePath();
        ctx.globalAlpha = 0.16;
        ctx.fillStyle = stroke;
        ctx.fill();
        ctx.globalAlpha = 1;
      }
      ctx.beginPath();
      pts.forEach((p, i) => (i ? ctx.lineTo(X(p.t), Y(p.v)) : ctx.moveTo(X(p.t), Y(p.v))));
      ctx.strokeStyle = stroke;
      ctx.lineWidth = 2;
      ctx.lineJoin = 'round';
      ctx.stroke();
    }
    ctx.restore();
  });
}

/** Per-minute bars. data: [{minute, processed, failed}] oldest first. */
export function barChart(canvas) {
  return new CanvasChart(canvas, (ctx, w, hgt, data, color) => {
    if (!data || !data.length) return;
    let max = 0;
    for (const b of data) max = Math.max(max, b.processed + b.failed);
    const scale = niceScale(max);
    max = scale.max;
    axes(ctx, w, hgt, scale, color);
    const plotW = w - PAD.left - PAD.right;
    const plotH = hgt - PAD.top - PAD.bottom;
    const slot = plotW / data.length;
    const bw = Math.max(2, Math.min(28, slot * 0.7));
    const ok = color('--c-processed');
    const bad = color('--c-failed');
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    data.forEach((b, i) => {
      const x = PAD.left + slot * i + (slot - bw) / 2;
      const hp = (b.processed / max) * plotH;
      const hf = (b.failed / max) * plotH;
      const base = PAD.top + plotH;
      ctx.fillStyle = ok;
      if (hp > 0) ctx.fillRect(x, base - hp, bw, Math.max(1, hp));
      ctx.fillStyle = bad;
      if (hf > 0) ctx.fillRect(x, base - hp - hf, bw, Math.max(1, hf));
      // Labels counted back from the newest minute, so the last one is always named.
      const every = Math.ceil(data.length / Math.max(2, Math.floor(plotW / 60)));
      if ((data.length - 1 - i) % every === 0) {
        const d = new Date(b.minute * 1000);
        ctx.fillStyle = color('--chart-text');
        ctx.fillText(`${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`, x + bw / 2, hgt - PAD.bottom + 6);
      }
    });
  });
}
