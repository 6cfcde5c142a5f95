// A flowrun client in Node: @grpc/grpc-js with the .proto files loaded at run time by
// @grpc/proto-loader (nothing generated). It creates a flow and a run, drives the run
// PENDING -> RUNNING -> COMPLETED through SetFlowRunState, then makes two calls fail and
// decodes their rich error details (google.rpc.Status in the grpc-status-details-bin
// trailer: ErrorInfo, BadRequest, RetryInfo), switching on flowrun.v1.ErrorReason.
//
//   npm ci && node index.js 127.0.0.1:50051        (FLOWRUN_TARGET works too)
//
// It prints one JSON object per step, and exits 1 if anything is not as expected.

"use strict";

const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const protobuf = require("protobufjs");

const PROTOS = path.resolve(__dirname, "..", "..", "protos");
// google/rpc/status.proto and error_details.proto, copied unchanged from Google's
// googleapis (Apache-2.0). protobufjs carries google/protobuf/*.proto itself.
const GOOGLE_PROTOS = path.join(__dirname, "third_party");

const definition = protoLoader.loadSync(
  ["flowrun/v1/flow_service.proto", "flowrun/v1/flow_run_service.proto"],
  {
    includeDirs: [PROTOS, GOOGLE_PROTOS],
    keepCase: true, // field names as in the .proto (flow_run_id), like grpcurl's JSON
    enums: String, // "STATE_TYPE_RUNNING", not 3
    longs: String,
    defaults: true, // `created: false` is shown, not dropped
    oneofs: true, // the response says which of accept/reject/abort/wait is set
  },
);
const flowrun = grpc.loadPackageDefinition(definition).flowrun.v1;

// The detail types, for decoding the status trailer (the same files grpcurl resolves
// through server reflection).
const details = new protobuf.Root();
details.resolvePath = (_origin, target) =>
  target.startsWith("flowrun/") ? path.join(PROTOS, target) : path.join(GOOGLE_PROTOS, target);
// (google/protobuf/*.proto imports are answered from protobufjs's own copies.)
details.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto", "flowrun/v1/error_details.proto"], {
  keepCase: true,
});
const Status = details.lookupType("google.rpc.Status");
const ErrorReason = details.lookupEnum("flowrun.v1.ErrorReason");

/** The rich details of a failed call: {code, message, details: [{type, ...fields}]} */
function decodeStatus(error) {
  const [bytes] = error.metadata.get("grpc-status-details-bin");
  if (!bytes) return null;
  const status = Status.decode(bytes);
  return {
    code: status.code,
    message: status.message,
    details: status.details.map((any) => {
      const typeName = any.type_url.slice(any.type_url.lastIndexOf("/") + 1);
      const type = details.lookupType(typeName);
      const body = type.toObject(type.decode(any.value), { enums: String, longs: String, defaults: true });
      return { type: typeName, ...body };
    }),
  };
}

function call(client, method, request) {
  const deadline = new Date(Date.now() + 10_000);
  return new Promise((resolve, reject) => {
    client[method](request, { deadline }, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

async function failure(promise) {
  try {
    await promise;
  } catch (error) {
    const status = decodeStatus(error);
    const info = status.details.find((detail) => detail.type === "google.rpc.ErrorInfo");
    return {
      code: grpc.status[error.code],
      reason: info.reason,
      // flowrun.v1.ErrorReason is the list of reasons to switch on, in every language.
      known_reason: Object.hasOwn(ErrorReason.values, `ERROR_REASON_${info.reason}`),
      details: status.details,
    };
  }
  throw new Error("the call was expected to fail");
}

async function main() {
  const target = process.argv[2] || process.env.FLOWRUN_TARGET || "127.0.0.1:50051";
  const suffix = process.argv[3] || `${Date.now()}`;
  const credentials = grpc.credentials.createInsecure();
  const flows = new flowrun.FlowService(target, credentials);
  const runs = new flowrun.FlowRunService(target, credentials);
  const steps = [];
  const step = (name, body) => {
    const entry = { step: name, ...body };
    steps.push(entry);
    console.log(JSON.stringify(entry));
  };

  const created = await call(flows, "CreateFlow", { name: `node-example-${suffix}`, tags: ["example"] });
  step("create_flow", { flow_id: created.flow.id, created: created.created });
  const again = await call(flows, "CreateFlow", { name: `node-example-${suffix}` });
  step("create_flow_again", { same_id: again.flow.id === created.flow.id, created: again.created });

  const run = (await call(runs, "CreateFlowRun", { flow_id: created.flow.id })).flow_run;
  step("create_flow_run", { flow_run_id: run.id, state: run.state.type });

  for (const type of ["STATE_TYPE_RUNNING", "STATE_TYPE_COMPLETED"]) {
    const outcome = await call(runs, "SetFlowRunState", { flow_run_id: run.id, state: { type } });
    step("set_flow_run_state", { proposed: type, status: outcome.status, state: outcome.state.type });
  }
  const done = (await call(runs, "GetFlowRun", { flow_run_id: run.id })).flow_run;
  step("get_flow_run", { state: done.state.type, state_name: done.state.name });

  step("malformed_id", await failure(call(runs, "GetFlowRun", { flow_run_id: "not-a-uuid" })));
  const unknown = "00000000-0000-4000-8000-000000000000";
  step("missing_run", await failure(call(runs, "GetFlowRun", { flow_run_id: unknown })));

  flows.close();
  runs.close();
  const ok =
    steps[1].same_id &&
    steps[1].created === false &&
    steps.filter((s) => s.step === "set_flow_run_state").every((s) => s.status === "SET_STATE_STATUS_ACCEPT") &&
    done.state.type === "STATE_TYPE_COMPLETED";
  if (!ok) throw new Error("unexpected outcome");
}

main().catch((error) => {
  console.error(`example failed: ${error.message}`);
  process.exit(1);
});
