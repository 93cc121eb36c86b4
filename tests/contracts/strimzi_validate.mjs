// Validate Strimzi custom resources with the models generated from Strimzi's own v1 CRDs
// (@kubernetes-models/strimzi-kafka-operator): every field's type, enum, range and the
// required ones, across the whole spec.
//
// Input: a JSON file (argv[2]) holding a list of resources. Output (stdout, JSON): one entry
// per resource, {kind, name, errors}; an unknown kind is an error too.
import { readFileSync } from "node:fs";

const input = JSON.parse(readFileSync(process.argv[2], "utf8"));
const results = [];
for (const resource of input) {
  const [group, version] = String(resource.apiVersion).split("/");
  const name = resource.metadata?.name;
  let Model;
  try {
    const module = await import(
      `@kubernetes-models/strimzi-kafka-operator/${group}/${version}/${resource.kind}`);
    Model = module[resource.kind];
  } catch (err) {
    results.push({ kind: resource.kind, name, errors: [`no model: ${err.message}`] });
    continue;
  }
  try {
    new Model(resource).validate();
    results.push({ kind: resource.kind, name, errors: [] });
  } catch (err) {
    results.push({ kind: resource.kind, name, errors: String(err.message).split(", ") });
  }
}
process.stdout.write(JSON.stringify(results));
