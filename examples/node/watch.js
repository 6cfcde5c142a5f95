// Watching flow runs from Node: server-streaming calls with @grpc/grpc-js and the
// .proto files loaded at run time. It creates a run, watches it with WatchFlowRun
// (the run as it is now, then its changes; the stream ends by itself when the run
// finishes) while it drives the run PENDING -> RUNNING -> COMPLETED, then resumes a
// WatchFlowRuns stream (filtered on the flow) from the cursor of the first event and
// gets the events after it (at least once: the first may come again).
//
//   npm ci && node watch.js 127.0.0.1:50051        (FLOWRUN_TARGET works too)
//
// It prints one JSON object per step, and exits 1 if anything is not as expected.

"use strict";

const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const PROTOS = path.resolve(__dirname, "..", "..", "protos");
const definition = protoLoader.loadSync(
  ["flowrun/v1/flow_service.proto", "flowrun/v1/flow_run_service.proto"],
  { includeDirs: [PROTOS], keepCase: true, enums: String, longs: String, defaults: true, oneofs: true },
);
const flowrun = grpc.loadPackageDefinition(definition).flowrun.v1;

function call(client, method, request) {
  const deadline = new Date(Date.now() + 10_000);
  return new Promise((resolve, reject) => {
    client[method](request, { deadline }, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

/** Collects a stream's messages; `until(messages)` true cancels it. Resolves with the
 * messages when the stream ends (OK, or cancelled by us), rejects on any other error. */
function collect(stream, until = () => false) {
  const messages = [];
  return new Promise((resolve, reject) => {
    stream.on("data", (message) => {
      messages.push(message);
      if (until(messages)) stream.cancel();
    });
    stream.on("error", (error) => (error.code === grpc.status.CANCELLED ? resolve(messages) : reject(error)));
    stream.on("end", () => resolve(messages));
  });
}

const describe = (event) => ({
  kind: event.kind,
  flow_run_id: event.flow_run.id,
  state: event.state ? event.state.type : null,
  previous_state_type: event.previous_state_type ?? null,
});

async function main() {
  const target = process.argv[2] || process.env.FLOWRUN_TARGET || "127.0.0.1:50051";
  const suffix = process.argv[3] || `${Date.now()}`;
  const credentials = grpc.credentials.createInsecure();
  const flows = new flowrun.FlowService(target, credentials);
  const runs = new flowrun.FlowRunService(target, credentials);
  const step = (name, body) => console.log(JSON.stringify({ step: name, ...body }));

  const flow = (await call(flows, "CreateFlow", { name: `node-watch-${suffix}` })).flow;
  const run = (await call(runs, "CreateFlowRun", { flow_id: flow.id })).flow_run;

  // WatchFlowRun: the first message is the run as it is now; then its events.
  const stream = runs.WatchFlowRun({ flow_run_id: run.id });
  let opened;
  const first = new Promise((resolve) => (opened = resolve));
  stream.once("data", () => opened());
  const watched = collect(stream);
  await first; // the stream is open: every change below comes after it
  for (const type of ["STATE_TYPE_RUNNING", "STATE_TYPE_COMPLETED"]) {
    await call(runs, "SetFlowRunState", { flow_run_id: run.id, state: { type } });
  }
  const messages = await watched; // ends by itself: the run is COMPLETED
  step("snapshot", { flow_run_id: messages[0].snapshot_run.id, state: messages[0].snapshot_run.state.type });
  const events = messages.filter((m) => m.message === "event").map((m) => m.event);
  for (const event of events) step("event", describe(event));

  // WatchFlowRuns from the first event's cursor: the events after it. Compare events by
  // their state's id, not by cursor: one event can carry different cursors on two streams,
  // each naming its own stream's position. A resume is at least once: an event the first
  // stream read while joining the live end carries the position from before it, so the
  // resumed stream may send it again before the ones after it.
  const resumed = await collect(
    runs.WatchFlowRuns({ flow_run_filter: { flow_id: { any: [flow.id] } }, cursor: events[0].cursor }),
    (got) => got.some((m) => m.message === "event" && m.event.state.id === events[1].state.id),
  );
  const again = resumed.filter((m) => m.message === "event").map((m) => m.event);
  const next = again.find((event) => event.state.id !== events[0].state.id);
  step("resumed", describe(next));

  flows.close();
  runs.close();
  const ok =
    events.length === 2 &&
    events[1].state.type === "STATE_TYPE_COMPLETED" &&
    next.state.id === events[1].state.id &&
    again.every((event) => event.state.id === events[0].state.id || event.state.id === events[1].state.id) &&
    messages[0].snapshot_run.id === run.id;
  if (!ok) throw new Error("unexpected outcome");
}

main().catch((error) => {
  console.error(`example failed: ${error.message}`);
  process.exit(1);
});
