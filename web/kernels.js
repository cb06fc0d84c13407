// Runs wgpt's exported kernel cases through this browser's WebGPU (see index.html and web/serve.rs).
// Each case is one or more dispatches exactly as wgpt's launcher built them: the composed WGSL module,
// entry point, override constants, storage bindings (read-only or read-write) and the uniform of
// parameters as the last binding. The case's buffers are uploaded as they were before the native run,
// the dispatches run in one compute pass, and the output is compared with the reference element by
// element: |got - want| <= bound, as the kernel tests' assert_within checks. When done, the results
// are window.wgptReport (the browser test reads them there over the DevTools protocol).

"use strict";

const summary = document.getElementById("summary");
const rows = document.getElementById("rows");

function bytes(base64) {
  const text = atob(base64);
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

function row(result) {
  const tr = rows.insertRow();
  tr.className = result.status;
  const cells = [result.kernel, result.name, result.status,
    result.error?.toExponential(2), result.bound?.toExponential(2), result.ms?.toFixed(1), result.note];
  cells.forEach((text, i) => {
    const td = tr.insertCell();
    td.textContent = text ?? "";
    if (i >= 3 && i <= 5) td.className = "num";
  });
}

// Shader modules by source, each with its compile errors ("" when it compiled).
const modules = new Map();
async function compile(device, source) {
  if (!modules.has(source)) {
    const module = device.createShaderModule({ code: source });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === "error")
      .map((m) => `line ${m.lineNum}: ${m.message}`).join("; ");
    modules.set(source, { module, errors });
  }
  return modules.get(source);
}

// Why this device cannot run a dispatch, or null when it can.
function missing(device, adapter, d) {
  if (d.subgroup_lanes > 0) {
    if (!device.features.has("subgroups")) return "needs the subgroups feature, which this adapter lacks";
    const min = adapter.info?.subgroupMinSize ?? 0;
    if (min < d.subgroup_lanes) {
      return `needs subgroups of at least ${d.subgroup_lanes} invocations; this adapter's have ${min} or more`;
    }
  }
  if (/^\s*enable\s+f16\s*;/m.test(d.module) && !device.features.has("shader-f16")) {
    return "needs shader-f16, which this adapter lacks";
  }
  return null;
}

// Why this device cannot run one of the case's dispatches, or undefined when it can run them all.
function lacking(device, adapter, c) {
  return c.dispatches.map((d) => missing(device, adapter, d)).find((m) => m);
}

// Pipelines by module, entry point, constants and binding writability: cases that share a run (one per
// output the test checks) or a launch compile it once, as wgpt's pipeline cache does. Each is a promise:
// the page asks for every case's pipelines before it runs the first, so the browser compiles them on
// its worker threads while the cases run.
const pipelines = new Map();
function pipeline(device, d) {
  const key = JSON.stringify([d.module, d.entry, d.constants, d.bindings.map((b) => b.writable)]);
  if (!pipelines.has(key)) {
    const made = build(device, d);
    made.catch(() => {}); // the case that awaits it reports the failure
    pipelines.set(key, made);
  }
  return pipelines.get(key);
}

async function build(device, d) {
  const { module, errors } = await compile(device, d.module);
  if (errors) throw new Error(`${d.kernel} does not compile: ${errors}`);
  const storage = (b, i) => ({ binding: i, visibility: GPUShaderStage.COMPUTE,
    buffer: { type: b.writable ? "storage" : "read-only-storage" } });
  const entries = d.bindings.map(storage);
  entries.push({ binding: d.bindings.length, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } });
  const layout = device.createBindGroupLayout({ entries });
  try {
    const made = await device.createComputePipelineAsync({
      layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: d.entry, constants: d.constants },
    });
    return { made, layout };
  } catch (e) {
    throw new Error(`${d.kernel}/${d.entry}: ${e.message}`);
  }
}

function buffer(device, data, usage) {
  const size = Math.max(4, Math.ceil(data.length / 4) * 4);
  const b = device.createBuffer({ size, usage, mappedAtCreation: true });
  new Uint8Array(b.getMappedRange()).set(data);
  b.unmap();
  return b;
}

async function run(device, adapter, c) {
  const kernel = [...new Set(c.dispatches?.map((d) => d.kernel) ?? [])].join(", ");
  const result = { name: c.name, kernel };
  if (c.skipped) return { ...result, status: "skipped", note: `not exported: ${c.skipped}` };
  const lacks = lacking(device, adapter, c);
  if (lacks) return { ...result, status: "skipped", note: lacks };
  const made = await Promise.all(c.dispatches.map((d) => pipeline(device, d)));

  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const buffers = c.buffers.map((b) => buffer(device, bytes(b), usage));
  const out = c.output;
  const staging = device.createBuffer({ size: 4 * Math.max(1, out.len),
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  device.pushErrorScope("validation");
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  c.dispatches.forEach((d, i) => {
    const entries = d.bindings.map((b, j) => ({ binding: j,
      resource: { buffer: buffers[b.buffer], offset: b.offset, size: b.size } }));
    const uniform = buffer(device, bytes(d.params), GPUBufferUsage.UNIFORM);
    buffers.push(uniform); // after the case's own, so that their indices hold; destroyed with them
    entries.push({ binding: d.bindings.length, resource: { buffer: uniform } });
    if (d.workgroups.includes(0)) return;
    pass.setPipeline(made[i].made);
    pass.setBindGroup(0, device.createBindGroup({ layout: made[i].layout, entries }));
    pass.dispatchWorkgroups(...d.workgroups);
  });
  pass.end();
  if (out.len > 0) encoder.copyBufferToBuffer(buffers[out.buffer], out.offset, staging, 0, 4 * out.len);
  const start = performance.now();
  device.queue.submit([encoder.finish()]);
  const error = await device.popErrorScope();
  if (error) throw new Error(error.message);
  await staging.mapAsync(GPUMapMode.READ);
  result.ms = performance.now() - start;
  const got = new Float32Array(staging.getMappedRange().slice(0, 4 * out.len));
  staging.destroy();
  buffers.forEach((b) => b.destroy());
  return { ...result, ...compare(got, new Float32Array(bytes(c.want).buffer), c.bound) };
}

// The worst element relative to its bound, as assert_within reports it; a NaN (or null) bound or
// error fails.
function compare(got, want, bound) {
  let worst = { ratio: 0, i: -1 };
  for (let i = 0; i < want.length; i++) {
    const error = Math.abs(got[i] - want[i]);
    const ratio = error === 0 ? 0 : error / (bound[i] ?? NaN);
    if (!(ratio <= worst.ratio)) worst = { ratio, i };
  }
  if (worst.i < 0) return { status: "ok", error: 0, bound: 0 };
  const i = worst.i;
  const fields = { error: Math.abs(got[i] - want[i]), bound: bound[i] };
  if (worst.ratio <= 1) return { status: "ok", ...fields };
  return { status: "fail", ...fields,
    note: `element ${i}: got ${got[i]}, want ${want[i]}, ${worst.ratio.toFixed(2)}x the bound` };
}

async function main() {
  const report = { adapter: null, modules: [], results: [] };
  try {
    const adapter = await navigator.gpu?.requestAdapter();
    if (!adapter) throw new Error("no WebGPU adapter (navigator.gpu missing or no adapter)");
    const features = ["subgroups", "shader-f16"].filter((f) => adapter.features.has(f));
    const device = await adapter.requestDevice({ requiredFeatures: features });
    const info = adapter.info ?? {};
    report.adapter = { vendor: info.vendor, architecture: info.architecture, description: info.description,
      features, subgroups: [info.subgroupMinSize, info.subgroupMaxSize] };
    device.lost.then((l) => { report.lost = l.message; });

    for (const m of await (await fetch("modules")).json()) {
      const { errors } = await compile(device, m.source);
      report.modules.push({ name: m.name, errors });
      const result = { name: "(module compiles)", kernel: m.name, status: errors ? "fail" : "ok", note: errors };
      if (errors) { report.results.push(result); row(result); }
    }
    const names = await (await fetch("cases/")).json();
    const started = performance.now();
    const cases = [];
    for (const name of names) {
      const c = await (await fetch(`cases/${encodeURIComponent(name)}`)).json();
      summary.textContent = `fetching case ${cases.length + 1} of ${names.length}`;
      if (!c.skipped && !lacking(device, adapter, c)) {
        c.dispatches.forEach((d) => pipeline(device, d));
      }
      cases.push(c);
    }
    for (const [n, c] of cases.entries()) {
      summary.textContent = `${adapter.info?.architecture ?? "adapter"}: case ${n + 1} of ${names.length}`;
      let result;
      try {
        result = await run(device, adapter, c);
      } catch (e) {
        result = { name: c.name, kernel: c.dispatches?.[0]?.kernel, status: "fail", note: String(e.message ?? e) };
      }
      report.results.push(result);
      row(result);
    }
    report.seconds = (performance.now() - started) / 1000;
    const count = (s) => report.results.filter((r) => r.status === s).length;
    summary.textContent = `${info.vendor} ${info.architecture} (features: ${features.join(", ") || "none"}): `
      + `${report.modules.length} modules, ${names.length} cases: ${count("ok")} match, ${count("fail")} fail, `
      + `${count("skipped")} skipped, in ${report.seconds.toFixed(1)} s`;
  } catch (e) {
    report.error = String(e.message ?? e);
    summary.textContent = `error: ${report.error}`;
  }
  window.wgptReport = report;
}

main();
