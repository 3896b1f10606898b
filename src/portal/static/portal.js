// estd portal: progressive enhancement only. Every page works without it.
// Copy buttons: shown only where the clipboard can be written.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  if (!navigator.clipboard) { return; }
  document.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(source.textContent.trim()).then(function () {
        button.textContent = document.documentElement.lang === "da" ? "Kopieret" : "Copied";
      });
    });
  });
});
