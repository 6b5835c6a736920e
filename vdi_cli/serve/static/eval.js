/* The evaluation page: a "truth" or "#1" button plays that window of the query's video. */
"use strict";
(function () {
  const viewer = document.getElementById("viewer");
  const player = document.getElementById("player");
  const title = document.getElementById("now-playing");
  document.querySelectorAll("button.play").forEach((b) => {
    b.addEventListener("click", () => {
      const start = Number(b.dataset.start), end = Number(b.dataset.end);
      viewer.hidden = false;
      title.textContent = `${b.dataset.label}: ${start.toFixed(1)} – ${end.toFixed(1)} s`;
      playWindow(player, b.dataset.url, start, end, null);
      viewer.scrollIntoView({block: "nearest"});
    });
  });
})();
