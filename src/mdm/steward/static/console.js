// Keyboard shortcuts for the review screen: a key submits the form whose
// data-key matches (s same, n not same, k skip, u undo). Ignored while typing.
(function () {
  "use strict";
  var busy = false;
  document.addEventListener("keydown", function (event) {
    if (busy || event.ctrlKey || event.metaKey || event.altKey) return;
    var tag = (event.target && event.target.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
    var form = document.querySelector('form[data-key="' + event.key.toLowerCase() + '"]');
    if (!form) return;
    event.preventDefault();
    busy = true;
    document.body.classList.add("busy");
    if (form.requestSubmit) form.requestSubmit(); else form.submit();
  });
  // Plain forms carry the CSRF token as a field; scripted requests send it as a header.
  window.mdmCsrf = function () {
    var field = document.querySelector('input[name="csrf_token"]');
    return field ? field.value : "";
  };
})();
