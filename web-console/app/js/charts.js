// Small line charts on a canvas, redrawn from the stats stream's samples.

/** Draws `values` (numbers or null) into `canvas`; the colour comes from a CSS variable. */
export function drawChart(canvas, values, { colorVar = "--accent", unit = "", digits = 1 } = {}) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 300;
  const height = canvas.clientHeight || 80;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  const style = getComputedStyle(canvas);
  const color = style.getPropertyValue(colorVar).trim() || "#36f";
  const muted = style.getPropertyValue("--fg-muted").trim() || "#888";
  const present = values.filter((v) => typeof v === "number" && Number.isFinite(v));
  const max = Math.max(1e-9, ...present);
  const pad = 4;
  const top = 14;
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = muted;
  const latest = present.length ? present[present.length - 1] : null;
  g.fillText(`max ${format(max, digits)}${unit}`, pad, 11);
  g.strokeStyle = muted;
  g.globalAlpha = 0.3;
  g.beginPath();
  g.moveTo(0, height - pad);
  g.lineTo(width, height - pad);
  g.stroke();
  g.globalAlpha = 1;
  if (values.length < 2) {
    canvas.setAttribute("aria-label", `${canvas.dataset.label}: no samples yet`);
    return;
  }
  const step = (width - 2 * pad) / (values.length - 1);
  g.strokeStyle = color;
  g.lineWidth = 1.5;
  g.beginPath();
  let drawing = false;
  values.forEach((v, i) => {
    if (typeof v !== "number" || !Number.isFinite(v)) {
      drawing = false;
      return;
    }
    const x = pad + i * step;
    const y = height - pad - (v / max) * (height - pad - top);
    if (drawing) g.lineTo(x, y);
    else g.moveTo(x, y);
    drawing = true;
  });
  g.stroke();
  canvas.setAttribute("aria-label",
    `${canvas.dataset.label}: latest ${latest === null ? "none" : format(latest, digits) + unit}, max ${format(max, digits)}${unit}`);
}

function format(v, digits) {
  if (v >= 1000) return Math.round(v).toLocaleString();
  return Number(v.toFixed(digits)).toString();
}
