/* The search page: query -> /api/search -> moments across videos; a click plays one. */
"use strict";
(function () {
  const form = document.getElementById("search-form");
  const list = document.getElementById("results");
  const status = document.getElementById("status");
  const viewer = document.getElementById("viewer");
  const player = document.getElementById("player");
  const timeline = document.getElementById("timeline");
  const title = document.getElementById("now-playing");

  function fmt(t) { return Number(t).toFixed(1) + " s"; }

  function play(video, start, end, score, query, index) {
    viewer.hidden = false;
    title.textContent = `${video.vid}: ${fmt(start)} – ${fmt(end)} (score ${score.toFixed(3)})`;
    const windows = [{start, end, cls: "pred", label: `${fmt(start)} – ${fmt(end)}`}];
    let setCursor = drawTimeline(timeline, video.duration, windows, [], []);
    playWindow(player, video.url, start, end, (t) => setCursor(t));
    // the per-frame scores of this video only, fetched once it plays
    const params = new URLSearchParams({q: query, vid: video.vid});
    if (index) params.append("index", index);
    fetch("/api/timeline?" + params.toString()).then((r) => (r.ok ? r.json() : null))
      .then((curve) => {
        if (curve && title.dataset.vid === video.vid) {
          setCursor = drawTimeline(timeline, curve.duration, windows, curve.times, curve.timeline);
        }
      });
    title.dataset.vid = video.vid;
  }

  async function search(event) {
    event.preventDefault();
    const params = new URLSearchParams();
    params.append("q", document.getElementById("q").value);
    params.append("k", document.getElementById("k").value || "10");
    const index = document.getElementById("index").value;
    const query = document.getElementById("q").value;
    if (index) params.append("index", index);
    status.textContent = "searching…";
    list.replaceChildren();
    const answer = await fetch("/api/search?" + params.toString());
    const data = await answer.json();
    if (!answer.ok) {
      status.textContent = `Error: ${data.error}` + (data.hint ? ` (hint: ${data.hint})` : "");
      return;
    }
    const videos = Object.fromEntries(data.videos.map((v) => [v.vid, v]));
    const found = data.corpus[0].pred_relevant_windows;
    status.textContent = `${found.length} moments in ${data.videos.length} videos ` +
      `(${(data.timings.server * 1000).toFixed(0)} ms on the server)`;
    found.forEach(([vid, start, end, score], rank) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.className = "moment";
      button.dataset.vid = vid;
      button.dataset.start = start;
      button.dataset.end = end;
      button.textContent = `${vid}  ${fmt(start)} – ${fmt(end)}  score ${score.toFixed(3)}`;
      button.addEventListener("click", () => {
        list.querySelectorAll(".moment").forEach((b) => b.classList.remove("active"));
        button.classList.add("active");
        play(videos[vid], start, end, score, query, index);
      });
      li.appendChild(button);
      list.appendChild(li);
    });
  }

  form.addEventListener("submit", search);
})();
