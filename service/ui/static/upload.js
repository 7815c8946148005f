// Study upload with a progress bar: posts the form with XMLHttpRequest (upload progress
// events), sends the session's CSRF secret as a header, and shows the engine's error next to
// the file it names.
(function () {
  "use strict";
  const form = document.getElementById("upload-study");
  if (!form) return;
  const bar = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const button = document.getElementById("upload-button");

  function clearErrors() {
    for (const slot of form.querySelectorAll(".file-error")) slot.textContent = "";
  }

  // The slot for an error: the input whose chosen file the message names, else its field.
  function slotFor(error) {
    for (const input of form.querySelectorAll("input[type=file]")) {
      for (const file of input.files) {
        if (error.file && (error.file === file.name || error.file.startsWith(file.name.replace(/\.nii(\.gz)?$/, "")))) {
          return form.querySelector(`.file-error[data-for="${input.name}"]`);
        }
      }
    }
    const field = (error.field || "").replace(/\[\d+\]$/, "");
    return form.querySelector(`.file-error[data-for="${field}"]`) || form.querySelector(".file-error[data-for=images]");
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearErrors();
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("X-CSRF-Token", form.dataset.csrf);
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
    });
    request.addEventListener("load", () => {
      let body = {};
      try { body = JSON.parse(request.responseText); } catch (e) { body = { detail: request.responseText }; }
      button.disabled = false;
      if (request.status === 201) {
        bar.value = 100;
        status.textContent = `uploaded ${body.case_id}; queued ${body.jobs.length} job(s)`;
        status.className = "ok";
        window.setTimeout(() => window.location.reload(), 800);
        return;
      }
      status.textContent = `upload refused (${request.status})`;
      status.className = "error";
      slotFor(body).textContent = body.detail || `HTTP ${request.status}`;
    });
    request.addEventListener("error", () => { button.disabled = false; status.textContent = "network error"; });
    button.disabled = true;
    bar.value = 0;
    status.textContent = "uploading…";
    request.send(new FormData(form));
  });
})();
