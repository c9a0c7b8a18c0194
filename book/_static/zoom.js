// Figures open at full size on click: wrap every output image of a chapter in a link to itself.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll(".cell_output img, figure img").forEach(function (img) {
    if (img.closest("a")) return;
    var a = document.createElement("a");
    a.href = img.src;
    a.target = "_blank";
    a.title = "open the figure at full size";
    img.parentNode.insertBefore(a, img);
    a.appendChild(img);
    img.style.cursor = "zoom-in";
  });
});
