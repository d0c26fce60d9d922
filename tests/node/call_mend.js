// A Node client made from the repository's protos/ alone (@grpc/proto-loader, no
// reflection, no generated code): submits the resize read as JSON from stdin, reads the
// job back, and prints {"services", "submitted", "job"} or {"error": {code, details}}.
//   node call_mend.js ADDRESS API_KEY PROTOS_DIR < request.json
"use strict";
const fs = require("node:fs");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const [address, apiKey, protos] = process.argv.slice(2);
const definition = protoLoader.loadSync(
  ["mend/v1/jobs.proto", "google/rpc/error_details.proto", "google/rpc/status.proto"],
  { includeDirs: [protos], keepCase: false, longs: String, enums: String, oneofs: true },
);
const mend = grpc.loadPackageDefinition(definition).mend.v1;
const client = new mend.JobService(address, grpc.credentials.createInsecure());
const metadata = new grpc.Metadata();
metadata.set("x-api-key", apiKey);

const call = (method, request) =>
  new Promise((resolve, reject) =>
    client[method](request, metadata, { deadline: Date.now() + 10000 }, (err, reply) =>
      err ? reject(err) : resolve(reply),
    ),
  );

async function main() {
  const request = JSON.parse(fs.readFileSync(0, "utf8"));
  const services = Object.keys(definition).filter((name) => "SubmitJob" in definition[name]);
  try {
    const submitted = await call("SubmitImageResize", request);
    const job = await call("GetJob", { id: submitted.jobId });
    console.log(JSON.stringify({ services, submitted, job }));
  } catch (err) {
    console.log(JSON.stringify({ error: { code: err.code, details: err.details } }));
  } finally {
    client.close();
  }
}

main();
