// The slip's print button (no inline scripts: the pages' CSP allows only scripts from this site).
document.addEventListener("DOMContentLoaded", function () {
  var button = document.getElementById("print-slip");
  if (button) {
    button.addEventListener("click", function () { window.print(); });
  }
});
