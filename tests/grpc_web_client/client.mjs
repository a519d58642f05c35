// An independent gRPC-Web client against parc-server: Connect's Node transport over HTTP/1.1
// and TLS, with AgentService described at run time from a FileDescriptorSet (no code written
// or generated for Parc). Prints one JSON line of what the server answered.
//   node client.mjs BASE_URL CA_PEM_PATH DESCRIPTOR_SET_PATH ENROLLMENT_TOKEN
import { readFileSync } from "node:fs";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";

const [baseUrl, caPath, descriptorPath, token] = process.argv.slice(2);
const registry = createFileRegistry(
  fromBinary(FileDescriptorSetSchema, readFileSync(descriptorPath)),
);
const service = registry.getService("parc.v1.AgentService");
const transport = createGrpcWebTransport({
  baseUrl,
  httpVersion: "1.1",
  nodeOptions: { ca: readFileSync(caPath) },
});
const client = createClient(service, transport);

async function refusal(call) {
  try {
    await call();
    return { code: 0 };
  } catch (e) {
    const err = ConnectError.from(e);
    return { code: err.code, message: err.rawMessage };
  }
}

const out = {};
const enrolled = await client.enroll({
  token,
  identity: {
    productUuid: "7d4f1c2a-3b5e-4f60-8a91-0c2d3e4f5a6b",
    serial: "WIN10EDU0001",
    machineId: "c0ffee00c0ffee00c0ffee00c0ffee00",
  },
  hostname: "win-classe-01",
  agentVersion: "connect-node",
  detectedKind: 4,
});
out.deviceId = enrolled.deviceId;
out.uai = enrolled.uai;
const bearer = { authorization: `Bearer ${enrolled.deviceId}.${enrolled.deviceSecret}` };
const checkIn = await client.checkIn(
  { agentVersion: "connect-node", inventoryHash: "a".repeat(64) },
  { headers: bearer },
);
out.sendInventory = checkIn.sendInventory;
out.nextCheckinSeconds = checkIn.nextCheckinSeconds;
out.wrongCredential = await refusal(() =>
  client.checkIn({}, { headers: { authorization: `Bearer ${enrolled.deviceId}.wrong` } }),
);
out.noToken = await refusal(() => client.enroll({}));
console.log(JSON.stringify(out));
