// Bundles src/phone.js with SIP.js into dist/phone-<hash>.js and writes dist/manifest.json
// naming it (the portal serves the file under that name, cached for a year).
import { rmSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import { build } from "esbuild";

rmSync("dist", { recursive: true, force: true });
const result = await build({
  entryPoints: { phone: "src/phone.js" },
  bundle: true,
  minify: true,
  format: "iife",
  target: ["chrome109", "firefox115", "safari16"],
  entryNames: "[name]-[hash]",
  outdir: "dist",
  metafile: true,
  legalComments: "eof",
  logLevel: "warning",
});
const [bundle] = Object.keys(result.metafile.outputs).filter((path) => path.endsWith(".js"));
writeFileSync("dist/manifest.json", `${JSON.stringify({ "phone.js": basename(bundle) })}\n`);
console.log(`built ${bundle}`);
