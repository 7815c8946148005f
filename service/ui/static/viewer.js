// The study viewer: NiiVue (vendored UMD build, global `niivue`) over the /v1 downloads,
// which a signed-in browser may read with its session cookie. One pane per labelset; two
// panes show two labelsets of the same study side by side, with their crosshairs in sync.
(function () {
  "use strict";
  const root = document.getElementById("viewer");
  const statusLine = document.getElementById("viewer-status");
  const classSelect = document.getElementById("class");
  const opacity = document.getElementById("opacity");
  const hard = document.getElementById("hard");
  const boundaries = document.getElementById("boundaries");
  const readout = document.getElementById("probability");
  const panes = Array.from(root.querySelectorAll("figure.pane")).filter((pane) => pane.dataset.soft);
  const numClasses = Number(root.dataset.classes);
  const views = []; // {nv, pane, soft, label, superpixels}: volume indices in nv.volumes
  let draws = 0;

  // Distinct colours for the hard label's classes; class 0 (background) is transparent.
  function labelColormap() {
    const palette = [[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
      [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128]];
    const cm = { R: [], G: [], B: [], A: [], I: [] };
    for (let k = 0; k < numClasses; k++) {
      const rgb = palette[k % palette.length];
      cm.R.push(rgb[0]); cm.G.push(rgb[1]); cm.B.push(rgb[2]); cm.A.push(k === 0 ? 0 : 255); cm.I.push(k);
    }
    return cm;
  }

  // Superpixel map -> 1 where a voxel's superpixel differs from its +x, +y or +z neighbour's.
  function boundaryMask(volume) {
    const [nx, ny, nz] = [volume.hdr.dims[1], volume.hdr.dims[2], Math.max(1, volume.hdr.dims[3])];
    const ids = volume.img;
    const out = new ids.constructor(ids.length);
    const sxy = nx * ny;
    for (let z = 0; z < nz; z++) {
      for (let y = 0; y < ny; y++) {
        for (let x = 0; x < nx; x++) {
          const i = x + y * nx + z * sxy;
          const v = ids[i];
          if ((x + 1 < nx && ids[i + 1] !== v) || (y + 1 < ny && ids[i + nx] !== v) || (z + 1 < nz && ids[i + sxy] !== v)) {
            out[i] = 1;
          }
        }
      }
    }
    return out;
  }

  function drawn() {
    requestAnimationFrame(() => requestAnimationFrame(() => { draws += 1; root.dataset.draws = String(draws); }));
  }

  function apply() {
    const frame = Number(classSelect.value);
    const alpha = Number(opacity.value) / 100;
    for (const view of views) {
      const soft = view.nv.volumes[view.soft];
      view.nv.setFrame4D(soft.id, frame);
      view.nv.setOpacity(view.soft, alpha);
      view.nv.setOpacity(view.label, hard.checked ? 0.5 : 0);
      if (view.superpixels !== null) view.nv.setOpacity(view.superpixels, boundaries.checked ? 0.6 : 0);
      view.nv.updateGLVolume();
    }
    root.dataset.frame = String(frame);
    root.dataset.opacity = String(alpha);
    drawn();
  }

  function onLocation(view, location) {
    const value = location.values && location.values[view.soft] ? location.values[view.soft].value : NaN;
    const text = Number.isFinite(value) ? `p(class ${classSelect.value}) = ${value.toFixed(3)}` : "–";
    view.pane.querySelector(".pane-probability").textContent = text;
    if (view === views[0]) {
      readout.textContent = text;
      readout.dataset.voxel = Array.from(location.vox).join(","); // (x, y, z) in the file's voxel order
    }
  }

  async function open(pane, index) {
    const canvas = pane.querySelector("canvas");
    const nv = new niivue.Niivue({
      backColor: [0, 0, 0, 1], show3Dcrosshair: false, isColorbar: false, dragAndDropEnabled: false,
      multiplanarShowRender: niivue.SHOW_RENDER.NEVER, // the three slices only: no volume rendering
    });
    await nv.attachToCanvas(canvas);
    nv.setSliceType(nv.sliceTypeMultiplanar);
    const volumes = [
      { url: root.dataset.image, name: "image.nii.gz", colormap: "gray" },
      { url: pane.dataset.soft, name: "soft.nii.gz", colormap: "warm", cal_min: 0.02, cal_max: 1, opacity: 0.7, frame4D: 1 },
      { url: root.dataset.label, name: "label.nii.gz", colormap: "gray", opacity: 0 },
    ];
    if (pane.dataset.superpixels) {
      volumes.push({ url: pane.dataset.superpixels, name: "superpixels.nii.gz", colormap: "green", opacity: 0 });
    }
    await nv.loadVolumes(volumes);
    const view = { nv, pane, soft: 1, label: 2, superpixels: pane.dataset.superpixels ? 3 : null };
    nv.volumes[view.label].setColormapLabel(labelColormap());
    if (view.superpixels !== null) {
      const sp = nv.volumes[view.superpixels];
      sp.img = boundaryMask(sp);
      sp.cal_min = 0; sp.cal_max = 1; sp.global_min = 0; sp.global_max = 1;
    }
    nv.onLocationChange = (location) => onLocation(view, location);
    views[index] = view;
  }

  async function start() {
    if (!panes.length) { statusLine.textContent = "nothing to show"; return; }
    if (typeof niivue === "undefined") throw new Error("NiiVue did not load");
    await Promise.all(panes.map(open));
    if (views.length === 2) {
      views[0].nv.broadcastTo(views[1].nv, { "2d": true, "3d": true });
      views[1].nv.broadcastTo(views[0].nv, { "2d": true, "3d": true });
    }
    boundaries.disabled = !views.some((view) => view.superpixels !== null);
    for (const control of [classSelect, opacity, hard, boundaries]) control.addEventListener("change", apply);
    opacity.addEventListener("input", apply);
    apply();
    statusLine.textContent = "Click or drag in the image to move the cursor; the class's probability there is shown above.";
    root.dataset.ready = "1";
  }

  start().catch((error) => {
    statusLine.textContent = `the viewer failed: ${error}`;
    root.dataset.error = String(error);
  });
})();
