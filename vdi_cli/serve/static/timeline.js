/* A video's timeline as SVG: an optional score curve (per frame), shaded windows, a cursor.
   Shared by the search and evaluation pages; no library, nothing fetched from elsewhere. */
"use strict";
const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(name, attrs) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

/* windows: [{start, end, cls, label}]; times/scores may be empty (no curve). */
function drawTimeline(svg, duration, windows, times, scores) {
  const W = 600, H = 90, top = 6, bottom = 16;
  svg.replaceChildren();
  const x = (t) => (duration > 0 ? (t / duration) * W : 0);
  svg.appendChild(svgEl("rect", {x: 0, y: top, width: W, height: H - top - bottom, class: "track"}));
  for (const w of windows) {
    const r = svgEl("rect", {x: x(w.start), y: top, width: Math.max(1, x(w.end) - x(w.start)),
                             height: H - top - bottom, class: "window " + (w.cls || "")});
    if (w.label) { const t = svgEl("title", {}); t.textContent = w.label; r.appendChild(t); }
    svg.appendChild(r);
  }
  const pts = [];
  if (times && scores) {
    const vals = scores.filter((v) => v !== null);
    const lo = Math.min(...vals), hi = Math.max(...vals);
    const y = (v) => top + (1 - (hi > lo ? (v - lo) / (hi - lo) : 0.5)) * (H - top - bottom);
    times.forEach((t, i) => { if (scores[i] !== null) pts.push(`${x(t).toFixed(1)},${y(scores[i]).toFixed(1)}`); });
  }
  if (pts.length) svg.appendChild(svgEl("polyline", {points: pts.join(" "), class: "curve"}));
  const label = svgEl("text", {x: W - 2, y: H - 3, "text-anchor": "end", class: "tick"});
  label.textContent = `${duration.toFixed(1)} s`;
  svg.appendChild(label);
  const zero = svgEl("text", {x: 2, y: H - 3, class: "tick"});
  zero.textContent = "0";
  svg.appendChild(zero);
  const cursor = svgEl("line", {x1: 0, x2: 0, y1: top, y2: H - bottom, class: "cursor"});
  svg.appendChild(cursor);
  return (t) => { cursor.setAttribute("x1", x(t)); cursor.setAttribute("x2", x(t)); };
}

/* Play `url` in `player` from `start`, pausing at `end`; calls onTime(t) as it plays. */
function playWindow(player, url, start, end, onTime) {
  player.dataset.end = String(end);
  const go = () => {
    player.currentTime = start;
    const p = player.play();
    if (p && p.catch) p.catch(() => {});
  };
  player.ontimeupdate = () => {
    if (onTime) onTime(player.currentTime);
    if (player.currentTime >= Number(player.dataset.end)) player.pause();
  };
  if (player.getAttribute("src") !== url) {
    player.addEventListener("loadedmetadata", go, {once: true});
    player.setAttribute("src", url);
    player.load();
  } else {
    go();
  }
}
