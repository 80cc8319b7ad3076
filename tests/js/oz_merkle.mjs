// Cross-check helper for tests/test_merkle.py: builds the same trees with OpenZeppelin's own
// @openzeppelin/merkle-tree, and loads and verifies the trees and proofs landreg built.
// stdin: {"cases": [{"leafEncoding": [...], "values": [[...], ...], "ours": <StandardMerkleTree dump>}]}
// stdout: {"results": [{"root", "dump", "proofs", "oursValid", "oursProofsVerify"}]}
import { StandardMerkleTree } from "@openzeppelin/merkle-tree";
import { readFileSync } from "node:fs";

const input = JSON.parse(readFileSync(0, "utf8"));
const results = input.cases.map(({ leafEncoding, values, ours }) => {
  const tree = StandardMerkleTree.of(values, leafEncoding);
  const result = {
    root: tree.root,
    dump: tree.dump(),
    proofs: values.map((_, i) => tree.getProof(i)),
  };
  if (ours) {
    const loaded = StandardMerkleTree.load(ours);
    loaded.validate(); // throws on any inconsistency
    result.oursValid = true;
    result.oursProofsVerify = ours.values.map((v, i) =>
      StandardMerkleTree.verify(ours.tree[0], leafEncoding, v.value, loaded.getProof(i)));
  }
  return result;
});
process.stdout.write(JSON.stringify({ results }));
