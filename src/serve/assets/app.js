// fovea serve: the page. Plain JavaScript over the JSON API of docs/SERVE.md; nothing is
// fetched from outside the server.
'use strict';

const $ = id => document.getElementById(id);

const state = {
  model: null,
  layer: null,          // the layer whose channels the grid shows
  source: { kind: 'data', index: 0 },  // or { kind: 'upload', blob }
  unit: null,           // { layer, channel, cell: [y, x] | null }
  classChosen: false,   // false: the class panel follows the top prediction
  busy: false,          // a live update is in flight
  again: false,         // the input changed meanwhile: update once more after it
  webcam: null,         // the camera's stream while it runs
  updates: [],          // times of the recent updates, for the rate shown
};

function showError(e) {
  console.warn(e);
  $('errors').textContent = String(e.message || e);
}

async function api(path, options) {
  const r = await fetch(path, options);
  if (!r.ok && r.status !== 202) {
    let message = r.statusText;
    try { message = (await r.json()).error; } catch (_) { /* not JSON */ }
    throw new Error(`${path.split('?')[0]}: ${r.status} ${message}`);
  }
  return r;
}

// The query naming the current input, with `extra` parameters.
function query(extra) {
  const p = new URLSearchParams(extra);
  if (state.source.kind === 'data') p.set('data', state.source.index);
  else if ($('invert').checked) p.set('invert', '1');
  return p.toString();
}

// A POST carrying the current input: the upload as the body, or nothing for a data image.
function post(path, extra) {
  const body = state.source.kind === 'upload' ? state.source.blob : undefined;
  return api(`${path}?${query(extra)}`, { method: 'POST', body });
}

// An image's source, or none (an empty `src` would be an error of the page).
function setSrc(img, url) {
  if (url) img.src = url;
  else img.removeAttribute('src');
}

function shapeText(s) { return s.length === 3 ? `${s[0]}×${s[1]}×${s[2]}` : `[${s.join('×')}]`; }

async function init() {
  const model = await (await api('/api/model')).json();
  state.model = model;
  $('model-name').textContent = `${model.model} · input ${shapeText(model.input)} · ${model.params.toLocaleString('en')} parameters`;
  const body = $('layers').querySelector('tbody');
  for (const l of model.layers) {
    const tr = document.createElement('tr');
    tr.dataset.layer = l.name;
    for (const text of [l.name, l.kind, shapeText(l.output)]) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.appendChild(td);
    }
    tr.addEventListener('click', () => selectLayer(l.name));
    body.appendChild(tr);
  }
  for (const [i, name] of model.classes.entries()) {
    const o = document.createElement('option');
    o.value = i;
    o.textContent = name === String(i) ? name : `${i} ${name}`;
    $('class-select').appendChild(o);
  }
  $('invert-line').hidden = model.input[0] !== 1;
  if (model.data) {
    $('data-controls').hidden = false;
    $('data-index').max = model.data.count - 1;
  } else {
    state.source = { kind: 'none' };
    $('source-line').textContent = 'open, drop or film an image (the server has no data set)';
  }
  const first = model.layers.find(l => l.output.length === 3) || model.layers[0];
  selectLayer(first.name);
  wire();
  await showInput();
}

function selectLayer(name) {
  state.layer = name;
  for (const tr of $('layers').querySelectorAll('tbody tr')) tr.classList.toggle('selected', tr.dataset.layer === name);
  $('grid').replaceChildren();
  update();
}

function setData(index) {
  const count = state.model.data.count;
  state.source = { kind: 'data', index: ((index % count) + count) % count };
  $('data-index').value = state.source.index;
  showInput();
}

function setUpload(blob) {
  state.source = { kind: 'upload', blob };
  showInput();
}

// Draws the input and starts the updates that depend on it.
async function showInput() {
  const canvas = $('input-canvas');
  const ctx = canvas.getContext('2d');
  if (state.source.kind === 'data') {
    const r = await api(`/api/data/${state.source.index}`);
    const label = r.headers.get('x-fovea-label');
    const bitmap = await createImageBitmap(await r.blob());
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    $('source-line').textContent = `${state.model.data.name}, image ${state.source.index}, label ${label}`;
  } else if (state.source.kind === 'upload' && !state.webcam) {
    const bitmap = await createImageBitmap(state.source.blob);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    $('source-line').textContent = 'your image';
  }
  if (state.source.kind !== 'none') {
    // The predictions first: the class panel follows the top class.
    await update();
    refreshDetails();
  }
}

// One live update: predictions and the selected layer's maps, in one forward pass. Inputs that
// arrive while one is in flight are folded into one more update after it.
async function update() {
  if (!state.layer || state.source.kind === 'none') return;
  if (state.busy) { state.again = true; return; }
  state.busy = true;
  try {
    const started = performance.now();
    const a = await (await post('/api/activations', { layer: state.layer })).json();
    if (a.layer === state.layer) drawGrid(a);
    drawTop(a.top);
    const now = performance.now();
    state.updates.push(now);
    state.updates = state.updates.filter(t => now - t < 2000);
    const rate = state.updates.length > 1 ? (state.updates.length - 1) * 1000 / (now - state.updates[0]) : 0;
    $('timing').textContent = `update ${(now - started).toFixed(0)} ms (server ${a.ms.toFixed(1)} ms)` + (rate ? ` · ${rate.toFixed(1)} updates/s` : '');
  } catch (e) {
    showError(e);
  } finally {
    state.busy = false;
  }
  if (state.again) { state.again = false; update(); }
}

function drawTop(top) {
  const ol = $('top');
  ol.replaceChildren();
  for (const t of top) {
    const li = document.createElement('li');
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.style.width = `${Math.round(100 * (t.prob || 0))}px`;
    li.append(bar, `${t.label} ${(100 * (t.prob || 0)).toFixed(1)}%`);
    ol.appendChild(li);
  }
  if (!state.classChosen && top.length) {
    $('class-select').value = top[0].class;
  }
}

function decode(b64) {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

// Every channel of the layer, one canvas each ([C, H, W]), or one canvas of all units ([K]).
function drawGrid(a) {
  const bytes = decode(a.maps);
  const grid = $('grid');
  const maps = a.shape.length === 3;
  const [c, h, w] = maps ? a.shape : [1, Math.ceil(Math.sqrt(a.shape[0])), Math.ceil(Math.sqrt(a.shape[0]))];
  $('grid-title').textContent = `${a.layer} (${a.kind}) · ${maps ? `${c} channels of ${h}×${w}` : `${a.shape[0]} units`}`;
  if (grid.children.length !== c || grid.dataset.layer !== a.layer) {
    grid.replaceChildren();
    grid.dataset.layer = a.layer;
    const scale = Math.max(1, Math.floor(Math.min(96, 640 / Math.sqrt(c)) / Math.max(h, w)));
    for (let k = 0; k < c; k++) {
      const canvas = document.createElement('canvas');
      canvas.width = w;
      canvas.height = h;
      canvas.style.width = `${w * scale}px`;
      canvas.style.height = `${h * scale}px`;
      canvas.dataset.channel = k;
      canvas.title = maps ? `channel ${k}` : 'click a unit';
      canvas.addEventListener('click', ev => {
        const y = Math.min(h - 1, Math.floor(ev.offsetY / scale));
        const x = Math.min(w - 1, Math.floor(ev.offsetX / scale));
        if (maps) openUnit(a.layer, k, ev.shiftKey || ev.altKey ? [y, x] : null);
        else if (y * w + x < a.shape[0]) openUnit(a.layer, y * w + x, null);
      });
      grid.appendChild(canvas);
    }
  }
  const plane = h * w;
  for (let k = 0; k < c; k++) {
    const canvas = grid.children[k];
    const ctx = canvas.getContext('2d');
    const img = ctx.createImageData(w, h);
    for (let i = 0; i < plane; i++) {
      const v = maps || i < a.shape[0] ? bytes[k * plane + i] : 0;
      img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = v;
      img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    canvas.classList.toggle('selected', !!state.unit && state.unit.layer === a.layer && state.unit.channel === k && maps);
  }
}

function openUnit(layer, channel, cell) {
  state.unit = { layer, channel, cell };
  $('unit-panel').hidden = false;
  $('unit-title').textContent = `Unit ${layer}:${channel}`;
  for (const canvas of $('grid').children) canvas.classList.toggle('selected', Number(canvas.dataset.channel) === channel);
  loadUnit();
  loadPatches(layer, channel);
  loadAscent($('unit-ascent'), $('unit-ascent-status'), { layer, channel, preset: $('preset').value });
  $('unit-panel').scrollIntoView({ behavior: 'smooth', block: 'nearest' });
}

async function loadUnit() {
  const u = state.unit;
  if (!u || state.source.kind === 'none') return;
  const extra = { layer: u.layer, channel: u.channel };
  if (u.cell) { extra.y = u.cell[0]; extra.x = u.cell[1]; }
  try {
    const r = await (await post('/api/unit', extra)).json();
    if (state.unit !== u) return;
    setSrc($('unit-map'), r.map);
    $('unit-map').hidden = !r.map;
    $('unit-guided').src = r.guided;
    $('unit-deconvnet').src = r.deconvnet;
    const at = r.at ? ` at (${r.at[0]}, ${r.at[1]})` : '';
    const rf = r.region ? `, receptive field rows ${r.region.y0}-${r.region.y1}, columns ${r.region.x0}-${r.region.x1}` : '';
    $('unit-map-caption').textContent = `map: ${r.value === null ? 'not a number' : r.value.toFixed(3)}${at}${rf}`;
  } catch (e) { showError(e); }
}

async function loadPatches(layer, channel) {
  const status = $('patches-status');
  $('patches-picture').hidden = true;
  $('patches-list').replaceChildren();
  if (!state.model.data) { status.textContent = '(the server has no data set: start it with --data)'; return; }
  for (;;) {
    if (!state.unit || state.unit.layer !== layer || state.unit.channel !== channel) return;
    let r;
    try { r = await api(`/api/patches?layer=${encodeURIComponent(layer)}&channel=${channel}`); }
    catch (e) { status.textContent = `(${e.message})`; return; }
    const body = await r.json();
    if (r.status === 202) {
      status.textContent = `(scanning the data set once for ${layer}: ${body.done} of ${body.total} images)`;
      await new Promise(res => setTimeout(res, 400));
      continue;
    }
    status.textContent = '';
    $('patches-picture').src = body.picture;
    $('patches-picture').hidden = false;
    const list = $('patches-list');
    for (const p of body.patches) {
      const li = document.createElement('li');
      const a = document.createElement('a');
      a.href = '#';
      a.textContent = `image ${p.image} (${p.label}): ${p.value === null ? 'NaN' : p.value.toFixed(2)}`;
      a.addEventListener('click', ev => { ev.preventDefault(); setData(p.image); });
      li.appendChild(a);
      list.appendChild(li);
    }
    return;
  }
}

async function loadAscent(img, status, params) {
  status.textContent = 'computing…';
  const key = JSON.stringify(params);
  img.dataset.want = key;
  try {
    const blob = await (await api(`/api/ascent?${new URLSearchParams(params)}`)).blob();
    if (img.dataset.want !== key) return;
    if (img.src.startsWith('blob:')) URL.revokeObjectURL(img.src);
    img.src = URL.createObjectURL(blob);
    status.textContent = '';
  } catch (e) { status.textContent = e.message; }
}

async function loadClass() {
  if (state.source.kind === 'none') return;
  const k = $('class-select').value;
  try {
    const r = await (await post('/api/class', { class: k })).json();
    if ($('class-select').value !== String(r.class)) return;
    $('class-score').textContent = `score ${r.score === null ? 'NaN' : r.score.toFixed(3)}`;
    $('class-saliency').src = r.saliency;
    setSrc($('class-gradcam'), r.gradcam);
    $('class-gradcam-caption').textContent = r.cam_layer ? `Grad-CAM at ${r.cam_layer}` : 'Grad-CAM (no maps in this net)';
  } catch (e) { showError(e); }
}

let classShown = null;
// The unit's and the class's pictures for the current input; not on every webcam frame.
function refreshDetails() {
  if (state.webcam) return;
  loadUnit();
  loadClass();
  const k = $('class-select').value;
  const want = `${k}/${$('preset').value}`;
  if (classShown !== want) {
    classShown = want;
    loadAscent($('class-ascent'), $('class-ascent-status'), { class: k, preset: $('preset').value });
  }
}

// A light border means a dark digit on paper: the MNIST nets want it inverted.
async function guessInvert(blob) {
  if (state.model.input[0] !== 1) return;
  const bitmap = await createImageBitmap(blob);
  const c = document.createElement('canvas');
  c.width = c.height = 32;
  const ctx = c.getContext('2d');
  ctx.drawImage(bitmap, 0, 0, 32, 32);
  const d = ctx.getImageData(0, 0, 32, 32).data;
  let sum = 0, n = 0;
  for (let i = 0; i < 32; i++) for (const [x, y] of [[i, 0], [i, 31], [0, i], [31, i]]) {
    const o = 4 * (y * 32 + x);
    sum += (d[o] + d[o + 1] + d[o + 2]) / 3;
    n++;
  }
  $('invert').checked = sum / n > 127;
}

async function openFile(file) {
  if (!file) return;
  stopWebcam();
  await guessInvert(file).catch(() => {});
  setUpload(file);
}

async function startWebcam() {
  const video = $('video');
  state.webcam = await navigator.mediaDevices.getUserMedia({ video: true });
  video.srcObject = state.webcam;
  await video.play();
  $('webcam').textContent = 'stop webcam';
  const canvas = $('input-canvas');
  const ctx = canvas.getContext('2d');
  let frames = [];
  const loop = async () => {
    if (!state.webcam) return;
    const side = Math.min(video.videoWidth, video.videoHeight);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(video, (video.videoWidth - side) / 2, (video.videoHeight - side) / 2, side, side, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise(res => canvas.toBlob(res, 'image/jpeg', 0.9));
    state.source = { kind: 'upload', blob };
    $('source-line').textContent = 'webcam';
    await update();
    if (!state.webcam) return;  // stopped while this frame was in flight
    const now = performance.now();
    frames.push(now);
    frames = frames.filter(t => now - t < 2000);
    if (frames.length > 1) $('fps').textContent = `${((frames.length - 1) * 1000 / (now - frames[0])).toFixed(1)} frames/s`;
    requestAnimationFrame(loop);
  };
  loop();
}

function stopWebcam() {
  if (!state.webcam) return;
  for (const t of state.webcam.getTracks()) t.stop();
  state.webcam = null;
  $('webcam').textContent = 'webcam';
  $('fps').textContent = '';
  refreshDetails();
}

function wire() {
  $('prev').addEventListener('click', () => setData(state.source.index - 1 || 0));
  $('next').addEventListener('click', () => setData((state.source.index || 0) + 1));
  $('random').addEventListener('click', () => setData(Math.floor(Math.random() * state.model.data.count)));
  $('data-index').addEventListener('change', () => setData(Number($('data-index').value) || 0));
  $('file').addEventListener('change', ev => openFile(ev.target.files[0]).catch(showError));
  $('invert').addEventListener('change', () => { if (state.source.kind === 'upload') { update(); refreshDetails(); } });
  const drop = $('drop');
  for (const t of [document.body, drop]) t.addEventListener('dragover', ev => { ev.preventDefault(); drop.classList.add('over'); });
  document.body.addEventListener('dragleave', () => drop.classList.remove('over'));
  document.body.addEventListener('drop', ev => {
    ev.preventDefault();
    drop.classList.remove('over');
    openFile(ev.dataTransfer.files[0]).catch(showError);
  });
  $('webcam').addEventListener('click', () => {
    if (state.webcam) stopWebcam();
    else startWebcam().catch(e => showError(new Error(`webcam: ${e.message}`)));
  });
  $('class-select').addEventListener('change', () => { state.classChosen = true; refreshDetails(); });
  // One preset for every ascent image of the page: the unit's and the class's.
  $('preset').addEventListener('change', () => {
    const u = state.unit;
    if (u) loadAscent($('unit-ascent'), $('unit-ascent-status'), { layer: u.layer, channel: u.channel, preset: $('preset').value });
    refreshDetails();
  });
}

init().catch(showError);
