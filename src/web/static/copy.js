// sasgate: the copy-to-clipboard button next to a new link or SAS. The pages work without this
// script; it only un-hides the buttons and copies the text of the element a button names.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    var status = button.parentElement.querySelector(".copy-status");
    if (!target || !navigator.clipboard) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(target.value || target.textContent).then(
        function () {
          if (status) status.textContent = "Copied.";
        },
        function () {
          target.focus();
          target.select();
          if (status) status.textContent = "Could not copy: the text is selected, press Ctrl+C.";
        }
      );
    });
  });
});
