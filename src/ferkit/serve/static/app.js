// ferkit's page: send a photo (or webcam frames) to POST /v1/predict and draw the answer.
"use strict";

const LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];
const COLOURS = { angry: "#dc2828", disgust: "#78a01e", fear: "#963cc8", happy: "#fabe00",
                  sad: "#286ee6", surprise: "#f06e14", neutral: "#969696" };
const canvas = document.getElementById("view");
const ctx = canvas.getContext("2d");
const status = document.getElementById("status");
const video = document.getElementById("video");
let streaming = false;

function query() {
  return document.getElementById("eval1").checked ? "?views=eval1" : "?views=center";
}

async function predict(blob) {
  const res = await fetch("/v1/predict" + query(), { method: "POST", body: blob,
    headers: { "Content-Type": blob.type || "application/octet-stream" } });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

const PAD = 3;  // pixels around the panel's text and between its rows

// Where a face's probability panel goes, as ferkit's annotated copies place it
// (annotate.place_panel): right of the face, else left, below, above, else inside it at
// its bottom left; always moved back inside the picture.
function placePanel(box, imageW, imageH, labelW, row) {
  const barW = Math.max(30, Math.min(2 * labelW, imageW - labelW - 3 * PAD));
  const w = labelW + barW + 3 * PAD, h = LABELS.length * row + PAD, gap = 2;
  const spots = [[box.x + box.w + gap, box.y], [box.x - w - gap, box.y],
                 [box.x, box.y + box.h + gap], [box.x, box.y - h - gap]];
  let [x, y] = spots.find(([sx, sy]) => sx >= 0 && sx + w <= imageW && sy >= 0 && sy + h <= imageH)
    || [box.x + gap, box.y + box.h - h - gap];
  x = Math.min(Math.max(0, x), Math.max(0, imageW - w));
  y = Math.min(Math.max(0, y), Math.max(0, imageH - h));
  return { x, y, w, h, barW };
}

// The seven probabilities: a label column and a bar column, the font shrunk until the rows
// fit the picture's height.
function drawPanel(face, imageW, imageH, fontSize) {
  let size = fontSize;
  while (size > 8 && LABELS.length * (size + PAD) + PAD > imageH) size -= 1;
  ctx.font = `${size}px system-ui, sans-serif`;
  const labelW = Math.max(...LABELS.map((l) => ctx.measureText(l).width));
  const row = size + PAD;
  const p = placePanel(face.box, imageW, imageH, labelW, row);
  ctx.fillStyle = "rgba(30,30,30,0.85)";
  ctx.fillRect(p.x, p.y, p.w, p.h);
  const barX = p.x + 2 * PAD + labelW;
  ctx.textBaseline = "top";
  LABELS.forEach((label, k) => {
    const y = p.y + PAD + k * row;
    ctx.fillStyle = "#fff";
    ctx.fillText(label, p.x + PAD, y);
    ctx.fillStyle = "#464646";
    ctx.fillRect(barX, y + 1, p.barW, size - 1);
    ctx.fillStyle = COLOURS[label];
    ctx.fillRect(barX, y + 1, p.barW * face.probabilities[label], size - 1);
  });
  ctx.textBaseline = "alphabetic";
}

function draw(source, answer) {
  canvas.width = answer.width;
  canvas.height = answer.height;
  ctx.drawImage(source, 0, 0, canvas.width, canvas.height);
  const size = Math.max(12, Math.round(canvas.height / 32));
  ctx.font = `${size}px system-ui, sans-serif`;
  ctx.lineWidth = Math.max(2, canvas.height / 250);
  for (const f of answer.faces) {
    const { x, y, w, h } = f.box;
    const colour = COLOURS[f.label] || "#0c0";
    ctx.strokeStyle = colour;
    ctx.strokeRect(x, y, w, h);
    const text = (f.track ? `#${f.track} ` : "") + `${f.label} ${Math.round(100 * f.confidence)}%`;
    ctx.fillStyle = colour;
    ctx.fillRect(x, Math.max(0, y - size - 6), ctx.measureText(text).width + 8, size + 6);
    ctx.fillStyle = "#000";
    ctx.fillText(text, x + 4, Math.max(size, y - 5));
    drawPanel(f, canvas.width, canvas.height, Math.max(10, Math.round(size * 0.75)));
    ctx.font = `${size}px system-ui, sans-serif`;
  }
  const list = document.getElementById("faces");
  list.replaceChildren(...answer.faces.map((f, i) => {
    const li = document.createElement("li");
    li.textContent = `face ${f.track ? "#" + f.track : i + 1}: ${f.label} (${Math.round(100 * f.confidence)}%)`;
    li.className = "face";
    return li;
  }));
  document.getElementById("hint").hidden = true;
}

async function showFile(file) {
  if (!file) return;
  status.textContent = "Analysing…";
  try {
    const img = await createImageBitmap(file, { imageOrientation: "from-image" });
    const answer = await predict(file);
    draw(img, answer);
    status.textContent = answer.faces.length ? `${answer.faces.length} face(s) found.` : "No face found.";
  } catch (e) {
    status.textContent = "Error: " + e.message;
  }
}

document.getElementById("file").addEventListener("change", (e) => showFile(e.target.files[0]));
const drop = document.getElementById("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  showFile(e.dataTransfer.files[0]);
});

// Webcam faces followed from frame to frame in the page (the server keeps no state between
// requests): ferkit.predict.tracking.FaceTracker's rule. Each track's next box is its last
// plus its velocity; faces join the predicted boxes they overlap most (IoU >= 0.2), best
// pairs first; the rest start new tracks; a track unseen for 10 frames ends.
function iou(a, b) {
  const x0 = Math.max(a.x, b.x), y0 = Math.max(a.y, b.y);
  const x1 = Math.min(a.x + a.w, b.x + b.w), y1 = Math.min(a.y + a.h, b.y + b.h);
  const inter = Math.max(0, x1 - x0) * Math.max(0, y1 - y0);
  const union = a.w * a.h + b.w * b.h - inter;
  return union > 0 ? inter / union : 0;
}

class FaceTracker {
  constructor(minIou = 0.2, maxMissed = 10) {
    this.minIou = minIou;
    this.maxMissed = maxMissed;
    this.tracks = [];
    this.nextId = 1;
  }

  predicted(t) {
    const k = 1 + t.missed, v = t.velocity;
    return { x: t.box.x + v.x * k, y: t.box.y + v.y * k,
             w: Math.max(1, t.box.w + v.w * k), h: Math.max(1, t.box.h + v.h * k) };
  }

  // Sets each face's `track` (its id) and returns the faces.
  update(faces) {
    const pairs = [];
    this.tracks.forEach((t, ti) => faces.forEach((f, fi) => {
      pairs.push([iou(this.predicted(t), f.box), ti, fi]);
    }));
    pairs.sort((a, b) => b[0] - a[0]);
    const trackOf = new Map(), taken = new Set();
    for (const [overlap, ti, fi] of pairs) {
      if (overlap < this.minIou) break;
      if (taken.has(ti) || trackOf.has(fi)) continue;
      taken.add(ti);
      trackOf.set(fi, this.tracks[ti]);
    }
    this.tracks.forEach((t, ti) => { if (!taken.has(ti)) t.missed += 1; });
    faces.forEach((f, fi) => {
      let t = trackOf.get(fi);
      if (!t) {
        t = { id: this.nextId++, box: f.box, velocity: { x: 0, y: 0, w: 0, h: 0 }, missed: 0 };
        this.tracks.push(t);
      } else {
        for (const k of ["x", "y", "w", "h"]) {
          t.velocity[k] = 0.5 * t.velocity[k] + 0.5 * (f.box[k] - t.box[k]) / (1 + t.missed);
        }
        t.box = f.box;
        t.missed = 0;
      }
      f.track = t.id;
    });
    this.tracks = this.tracks.filter((t) => t.missed <= this.maxMissed);
    return faces;
  }
}

async function cameraLoop() {
  const grab = document.createElement("canvas");
  const tracker = new FaceTracker();
  while (streaming) {
    grab.width = video.videoWidth;
    grab.height = video.videoHeight;
    grab.getContext("2d").drawImage(video, 0, 0);
    const blob = await new Promise((r) => grab.toBlob(r, "image/jpeg", 0.85));
    try {
      const answer = await predict(blob);
      tracker.update(answer.faces);
      draw(grab, answer);
      status.textContent = "Webcam: live.";
    } catch (e) {
      status.textContent = "Error: " + e.message;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

document.getElementById("camera").addEventListener("click", async (e) => {
  if (streaming) {
    streaming = false;
    video.srcObject.getTracks().forEach((t) => t.stop());
    e.target.textContent = "Start webcam";
    status.textContent = "Webcam stopped.";
    return;
  }
  if (!navigator.mediaDevices || !window.isSecureContext) {
    status.textContent = "The webcam needs localhost or https (see the note below).";
    return;
  }
  try {
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
    await video.play();
    streaming = true;
    e.target.textContent = "Stop webcam";
    cameraLoop();
  } catch (err) {
    status.textContent = "Webcam unavailable: " + err.message;
  }
});
