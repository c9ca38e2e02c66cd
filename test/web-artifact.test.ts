/**
 * The artifact page's API (GET /api/v1/artifact, /api/v1/files) against a real server, with
 * artifacts pushed by the wharf client: kinds, facts, README and LICENSE, the referrer tree and its
 * counts, pull commands, files inside tar, tar.gz and eStargz layers, audit facts, access, bad input.
 * And kindOf's table, unit by unit.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { call } from '../src/testkit/http.js';
import { kindOf, labelFromType } from '../src/server/web/kinds.js';
import { ZSTD_AVAILABLE } from '../src/server/web/layers.js';
import type { ArtifactDetail, LayerFiles, ReferrerNode } from '../src/server/web/types.js';
import { basic, errorCode } from './helpers/auth.js';
import { pushFixtures, type Fixture } from './helpers/web-artifact.js';

const OCI = 'application/vnd.oci.image.manifest.v1+json';
const IDX = 'application/vnd.oci.image.index.v1+json';
const DOCKER = 'application/vnd.docker.distribution.manifest.v2+json';

describe('kindOf', () => {
  const cases: Array<[string, Parameters<typeof kindOf>, string, string]> = [
    ['OCI image', [OCI, null, 'application/vnd.oci.image.config.v1+json', {}], 'image', 'Container image'],
    ['Docker image', [DOCKER, null, 'application/vnd.docker.container.image.v1+json', {}], 'image', 'Container image (Docker)'],
    ['OCI index', [IDX, null, null, {}], 'image-index', 'Multi-platform image'],
    ['Docker manifest list', ['application/vnd.docker.distribution.manifest.list.v2+json', null, null, {}], 'image-index', 'Multi-platform image'],
    ['Helm chart by config', [OCI, null, 'application/vnd.cncf.helm.config.v1+json', {}], 'helm-chart', 'Helm chart'],
    ['Helm chart by layer', [OCI, null, null, {}, [{ mediaType: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip' }]], 'helm-chart', 'Helm chart'],
    ['OpenTofu module', [OCI, 'application/vnd.opentofu.modulepkg', 'application/vnd.oci.empty.v1+json', {}, [{ mediaType: 'archive/zip' }]], 'terraform-module', 'OpenTofu module'],
    ['OpenTofu provider', [IDX, 'application/vnd.opentofu.provider', null, {}], 'terraform-module', 'OpenTofu provider'],
    ['ModelPack model', [OCI, 'application/vnd.cncf.model.manifest.v1+json', 'application/vnd.cncf.model.config.v1+json', {}], 'ml-model', 'AI model (ModelPack)'],
    ['Docker model', [OCI, null, 'application/vnd.docker.ai.model.config.v0.1+json', {}, [{ mediaType: 'application/vnd.docker.ai.gguf.v3' }]], 'ml-model', 'AI model (Docker)'],
    ['SPDX SBOM', [OCI, 'application/spdx+json', null, {}], 'sbom-spdx', 'SPDX SBOM'],
    ['SPDX by layer (cosign attach)', [OCI, null, 'application/vnd.oci.image.config.v1+json', {}, [{ mediaType: 'text/spdx' }]], 'sbom-spdx', 'SPDX SBOM'],
    ['CycloneDX SBOM', [OCI, 'application/vnd.cyclonedx+json', null, {}], 'sbom-cyclonedx', 'CycloneDX SBOM'],
    ['cosign tag signature', [OCI, null, 'application/vnd.oci.image.config.v1+json', {}, [{ mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json' }]], 'signature-cosign', 'Cosign signature'],
    ['cosign referrer', [OCI, 'application/vnd.dev.cosign.artifact.sig.v1+json', null, {}], 'signature-cosign', 'Cosign signature'],
    ['notation', [OCI, 'application/vnd.cncf.notary.signature', null, {}], 'signature-notation', 'Notation signature'],
    ['in-toto provenance', [OCI, null, 'application/vnd.oci.image.config.v1+json', {}, [{ mediaType: 'application/vnd.in-toto+json', annotations: { 'in-toto.io/predicate-type': 'https://slsa.dev/provenance/v0.2' } }]], 'attestation', 'SLSA provenance'],
    ['in-toto SBOM', [OCI, null, 'application/vnd.oci.image.config.v1+json', {}, [{ mediaType: 'application/vnd.in-toto+json', annotations: { 'in-toto.io/predicate-type': 'https://spdx.dev/Document' } }]], 'sbom-spdx', 'SPDX SBOM (attestation)'],
    ['DSSE', [OCI, 'application/vnd.dsse.envelope.v1+json', null, {}], 'attestation', 'in-toto attestation'],
    ['Docker attestation manifest', [OCI, null, null, { 'vnd.docker.reference.type': 'attestation-manifest' }], 'attestation', 'Build attestation'],
    ['sigstore bundle', [OCI, 'application/vnd.dev.sigstore.bundle.v0.3+json', null, {}], 'signature-cosign', 'Sigstore bundle'],
    ['WASM', [OCI, null, 'application/vnd.wasm.config.v0+json', {}, [{ mediaType: 'application/wasm' }]], 'wasm', 'WebAssembly module'],
    ['STAC', [OCI, 'application/vnd.acme.scene', null, {}, [{ mediaType: 'application/geo+json' }]], 'stac', 'STAC / EO data'],
    ['generic', [OCI, 'application/vnd.acme.rocket.config.v1+json', null, {}], 'generic', 'Acme rocket'],
    ['ORAS default', [OCI, 'application/vnd.unknown.artifact.v1', 'application/vnd.oci.empty.v1+json', {}], 'generic', 'Artifact'],
    ['v1.0 artifact', [OCI, null, 'application/vnd.example.thing.config.v1+json', {}], 'generic', 'Example thing'],
    ['no type at all', [OCI, null, 'application/vnd.oci.empty.v1+json', {}], 'generic', 'Artifact'],
  ];
  for (const [name, args, kind, label] of cases) {
    test(name, () => {
      const k = kindOf(...args);
      assert.equal(k.kind, kind);
      assert.equal(k.label, label);
      assert.ok(k.icon.length > 0);
      assert.doesNotMatch(k.label, /unknown|^\/$/i);
    });
  }
  test('groups: signatures, SBOMs, attestations', () => {
    assert.equal(kindOf(OCI, 'application/vnd.cncf.notary.signature', null, {}).group, 'signatures');
    assert.equal(kindOf(OCI, 'application/spdx+json', null, {}).group, 'sboms');
    assert.equal(kindOf(OCI, 'application/vnd.in-toto+json', null, {}).group, 'attestations');
    assert.equal(kindOf(OCI, 'application/vnd.acme.x', null, {}).group, 'other');
  });
  test('labels of unregistered types are never empty, "unknown" or "/"', () => {
    for (const t of ['/', 'application/vnd.unknown', 'application/', '', 'x/y', 'application/vnd.unknown.config.v1+json', 'a'.repeat(500)]) {
      const l = labelFromType(t);
      assert.ok(l.length > 0 && l.length <= 60, t);
      assert.doesNotMatch(l, /unknown|\//i);
    }
  });
});

describe('artifact page API', () => {
  let f: Fixture;
  let url: string;
  const alice = basic('alice');
  const get = async <T>(path: string, headers: Record<string, string> = alice): Promise<T> => {
    const r = await call(url, 'GET', path, { headers });
    assert.equal(r.status, 200, `${r.what}: ${r.body.toString()}`);
    assert.equal(r.headers.get('cache-control'), 'no-store');
    return JSON.parse(r.body.toString()) as T;
  };
  const artifact = (repo: string, ref: string, headers?: Record<string, string>): Promise<ArtifactDetail> => get<ArtifactDetail>(`/api/v1/artifact?${new URLSearchParams({ repo, ref })}`, headers);
  const files = (repo: string, layer: string): Promise<LayerFiles> => get<LayerFiles>(`/api/v1/files?${new URLSearchParams({ repo, layer })}`);
  const fact = (a: ArtifactDetail, label: string): string | undefined => a.facts.find((x) => x.label === label)?.value;

  before(async () => {
    f = await pushFixtures();
    url = f.server.url;
  });
  after(async () => f?.close());

  test('an image: kind, facts from its config, files, size, created, pushed by', async () => {
    const a = await artifact('ml/app', 'v1');
    assert.equal(a.kind.kind, 'image');
    assert.equal(a.digest, f.image.desc.digest);
    assert.equal(a.tag, 'v1');
    assert.equal(fact(a, 'Platform'), 'linux/amd64');
    assert.equal(fact(a, 'Entrypoint'), '/bin/app');
    assert.equal(fact(a, 'Command'), '--serve');
    assert.equal(fact(a, 'Exposed ports'), '8080/tcp');
    assert.deepEqual(a.facts.filter((x) => x.label === 'Environment').map((x) => x.value), ['PATH=/usr/bin', 'MODE=prod']);
    assert.equal(fact(a, 'Layers'), '1');
    assert.equal((a.config as { os: string }).os, 'linux');
    assert.equal((a.manifest as { layers: unknown[] }).layers.length, 1);
    assert.equal(a.files.length, 1);
    assert.equal(a.files[0]!.path, 'rootfs.tar.gz');
    assert.equal(a.files[0]!.whole, true);
    assert.match(a.files[0]!.download, /^\/api\/v1\/download\?/);
    assert.ok(a.size > f.image.layer.size);
    assert.ok(a.created !== null && a.created > 0);
    assert.equal(a.pushedBy, 'alice');
    assert.ok(a.pushed !== null);
    // createIndex read the image (a /v2 manifest pull): counted as downloads.
    assert.ok(typeof a.downloads === 'number' && a.downloads >= 1);
    // alice may push, not delete; root (admin) may.
    assert.deepEqual(a.can, { delete: false });
    assert.deepEqual((await artifact('ml/app', 'v1', basic('root'))).can, { delete: true });
    const tools = a.pull.map((p) => p.tool);
    for (const t of ['wharf', 'docker', 'podman', 'skopeo', 'cosign'] as const) assert.ok(tools.includes(t), `${t} in ${tools.join(',')}`);
    // notation signed the SBOM, not the image: only cosign verifies the image.
    assert.ok(!tools.includes('notation'));
    assert.ok(!tools.includes('oras') && !tools.includes('helm'));
  });

  test('the referrer tree: grouped by kind, nested, counted', async () => {
    const a = await artifact('ml/app', f.image.desc.digest);
    assert.equal(a.tag, null);
    const groups = a.referrers.map((r) => r.kind.group);
    assert.deepEqual(groups, [...groups].sort((x, y) => ['signatures', 'sboms', 'attestations', 'other'].indexOf(x!) - ['signatures', 'sboms', 'attestations', 'other'].indexOf(y!)));
    const sbom = a.referrers.find((r) => r.digest === f.sbom.digest) as ReferrerNode;
    assert.equal(sbom.kind.kind, 'sbom-spdx');
    assert.equal(sbom.children.length, 1);
    assert.equal(sbom.children[0]!.kind.kind, 'signature-notation');
    assert.equal(a.referrers.filter((r) => r.kind.kind === 'signature-cosign').length, 2);
    assert.deepEqual(a.referrerCounts, { signatures: 3, sboms: 1, total: 4 });
    assert.ok(!a.pull.some((p) => p.tool === 'notation'));
    assert.ok(a.pull.some((p) => p.tool === 'cosign' && p.command.includes(`@${f.image.desc.digest}`)));
  });

  test('an index: children with platform and kind, counts rolled up from them', async () => {
    const a = await artifact('ml/app', 'multi');
    assert.equal(a.kind.kind, 'image-index');
    assert.equal(a.children.length, 1);
    assert.equal(a.children[0]!.digest, f.image.desc.digest);
    assert.equal(a.children[0]!.platform, 'linux/amd64');
    assert.equal(a.children[0]!.kind.kind, 'image');
    assert.ok(a.size > f.image.layer.size);
    assert.equal(a.referrers.length, 0);
    assert.deepEqual(a.referrerCounts, { signatures: 3, sboms: 1, total: 4 });
  });

  test('a Helm chart: Chart.yaml facts, values.yaml as a file, README from the chart, helm pull', async () => {
    const a = await artifact('ml/charts/mychart', '0.1.0');
    assert.equal(a.kind.kind, 'helm-chart');
    assert.equal(a.kind.label, 'Helm chart');
    assert.equal(fact(a, 'Chart'), 'mychart');
    assert.equal(fact(a, 'Version'), '0.1.0');
    assert.equal(fact(a, 'App version'), '1.16.0');
    assert.equal(fact(a, 'Description'), 'A Helm chart for Kubernetes');
    assert.deepEqual(a.readme, { source: 'chart:mychart/README.md', markdown: f.chart.readme });
    const values = a.files.find((x) => x.path === 'mychart/values.yaml');
    assert.ok(values && !values.whole && values.size === f.chart.values.length);
    const r = await call(url, 'GET', values.download, { headers: alice });
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), f.chart.values);
    const helm = a.pull.find((p) => p.tool === 'helm');
    assert.match(helm!.command, /^helm pull oci:\/\/[^ ]+\/ml\/charts\/mychart --version 0\.1\.0/);
    assert.ok(a.pull.some((p) => p.tool === 'oras'));
    assert.ok(!a.pull.some((p) => p.tool === 'docker' || p.tool === 'skopeo' || p.tool === 'podman'));
  });

  test('a generic artifact: label from its type, README and LICENSE from its files, oras pull', async () => {
    const a = await artifact('ml/data', 'v1');
    assert.equal(a.kind.kind, 'generic');
    assert.equal(a.kind.label, 'Acme dataset');
    assert.deepEqual(a.readme, { source: 'file:README.md', markdown: f.files.readme });
    assert.deepEqual(a.license, { source: 'file:LICENSE', text: f.files.license });
    assert.deepEqual(a.files.map((x) => x.path).sort(), ['LICENSE', 'README.md', 'bundle.tar', 'data.bin', 'tree']);
    assert.ok(a.files.find((x) => x.path === 'data.bin')!.mode !== null);
    assert.ok(a.pull.some((p) => p.tool === 'oras'));
    assert.ok(!a.pull.some((p) => p.tool === 'docker'));
  });

  test('a ModelPack model: facts from its config', async () => {
    const a = await artifact('ml/models/tiny', 'v1');
    assert.equal(a.kind.kind, 'ml-model');
    assert.equal(fact(a, 'Name'), 'tiny-llm');
    assert.equal(fact(a, 'Format'), 'gguf');
    assert.equal(fact(a, 'Parameters'), '8b');
    assert.equal(fact(a, 'Precision'), 'fp16');
    assert.equal(fact(a, 'Licenses'), 'Apache-2.0');
    assert.ok(a.pull.some((p) => p.tool === 'oras'));
  });

  test('SBOM and signature pages', async () => {
    const s = await artifact('ml/app', f.sbom.digest);
    assert.equal(s.kind.kind, 'sbom-spdx');
    assert.equal(s.facts.find((x) => x.label === 'Subject')?.value, f.image.desc.digest);
    assert.equal(s.referrers[0]?.kind.kind, 'signature-notation');
    const g = await artifact('ml/app', f.signature.digest);
    assert.equal(g.kind.kind, 'signature-cosign');
  });

  test('files inside a tar.gz, a plain tar and an eStargz layer', async () => {
    const gz = await files('ml/app', f.image.layer.digest);
    assert.equal(gz.format, 'tar+gzip');
    assert.deepEqual(gz.files.map((x) => [x.path, x.type]), [['bin', 'dir'], ['bin/app', 'file'], ['etc/app.conf', 'file']]);
    assert.equal(gz.files[1]!.size, 'binary of app'.length);
    assert.equal(gz.truncated, false);
    const tar = await files('ml/data', f.files.tarLayer.digest);
    assert.equal(tar.format, 'tar');
    assert.deepEqual(tar.files.map((x) => [x.path, x.type, x.download === '']), [['docs/guide.txt', 'file', false], ['docs/link', 'symlink', true]]);
    const es = await files('ml/es', f.estargz.layer.digest);
    assert.equal(es.format, 'estargz');
    const paths = es.files.filter((x) => x.type === 'file').map((x) => x.path).sort();
    assert.deepEqual(paths, ['hello.txt', 'sub/big.bin']);
    assert.equal(es.files.find((x) => x.path === 'sub/big.bin')!.size, f.estargz.big.length);
    // With the manifest named, the TOC is checked against its toc.digest annotation and the links carry ref.
    const checked = await get<LayerFiles>(`/api/v1/files?${new URLSearchParams({ repo: 'ml/es', ref: 'v1', layer: f.estargz.layer.digest })}`);
    assert.deepEqual(checked.files.map((x) => x.path), es.files.map((x) => x.path));
    assert.match(checked.files.find((x) => x.path === 'hello.txt')!.download, /[?&]ref=v1&/);
    // A layer that is no archive lists nothing.
    const plain = await files('ml/data', (await artifact('ml/data', 'v1')).files.find((x) => x.path === 'data.bin')!.layer);
    assert.equal(plain.format, 'none');
    assert.deepEqual(plain.files, []);
    // zstd: listed where Node decodes it; on Node 20 the format, no files, and why.
    const zst = await files('ml/large', f.zstd.layer.digest);
    assert.equal(zst.format, 'tar+zstd');
    if (ZSTD_AVAILABLE) assert.deepEqual(zst.files.map((x) => x.path), ['inside-zstd.txt']);
    else {
      assert.deepEqual(zst.files, []);
      assert.match(zst.note ?? '', /zstd/);
    }
    // A second listing comes from the cache, and says the same.
    assert.deepEqual(await files('ml/app', f.image.layer.digest), gz);
  });

  test('an eStargz TOC that does not match its toc.digest annotation is refused', async () => {
    const m = JSON.parse((await call(url, 'GET', '/v2/ml/es/manifests/v1', { headers: { ...alice, accept: 'application/vnd.oci.image.manifest.v1+json' } })).body.toString()) as { layers: Array<{ annotations: Record<string, string> }> };
    m.layers[0]!.annotations['containerd.io/snapshot/stargz/toc.digest'] = `sha256:${'1'.repeat(64)}`;
    const put = await call(url, 'PUT', '/v2/ml/es/manifests/forged', { headers: { ...alice, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: JSON.stringify(m) });
    assert.equal(put.status, 201);
    const r = await call(url, 'GET', `/api/v1/files?${new URLSearchParams({ repo: 'ml/es', ref: 'forged', layer: f.estargz.layer.digest })}`, { headers: alice });
    assert.equal(r.status, 400);
    assert.equal(errorCode(r), 'DIGEST_INVALID');
    const d = await call(url, 'GET', `/api/v1/download?${new URLSearchParams({ repo: 'ml/es', ref: 'forged', layer: f.estargz.layer.digest, path: 'hello.txt' })}`, { headers: alice });
    assert.equal(d.status, 400);
    assert.equal(errorCode(d), 'DIGEST_INVALID');
  });

  test('a private repository is invisible to anonymous visitors and users without rights', async () => {
    for (const headers of [{}, basic('victim')]) {
      for (const path of [
        `/api/v1/artifact?repo=ml/app&ref=v1`,
        `/api/v1/artifact?repo=ml/app&ref=nonexistent`,
        `/api/v1/files?repo=ml/app&layer=${f.image.layer.digest}`,
        `/api/v1/download?repo=ml/app&layer=${f.image.layer.digest}`,
        `/api/v1/download?repo=ml/app&ref=v1&archive=tar`,
      ]) {
        const r = await call(url, 'GET', path, { headers });
        assert.equal(r.status, 404, `${path}: ${r.status} ${r.body.toString()}`);
        assert.equal(errorCode(r), 'NAME_UNKNOWN');
      }
    }
    // bob may pull, not delete.
    const a = await artifact('ml/app', 'v1', basic('bob'));
    assert.deepEqual(a.can, { delete: false });
    // A wrong password is not an anonymous visit.
    assert.equal((await call(url, 'GET', '/api/v1/artifact?repo=ml/app&ref=v1', { headers: basic('bob', 'wrong') })).status, 401);
  });

  test('bad input: 400 with the error body, unknown things 404', async () => {
    const cases: Array<[string, number, string]> = [
      ['/api/v1/artifact?ref=v1', 400, 'NAME_INVALID'],
      ['/api/v1/artifact?repo=ML/Bad!&ref=v1', 400, 'NAME_INVALID'],
      ['/api/v1/artifact?repo=ml/app', 400, 'TAG_INVALID'],
      ['/api/v1/artifact?repo=ml/app&ref=-bad', 400, 'TAG_INVALID'],
      ['/api/v1/artifact?repo=ml/app&ref=sha256:zz', 400, 'DIGEST_INVALID'],
      ['/api/v1/artifact?repo=ml/app&ref=nope', 404, 'MANIFEST_UNKNOWN'],
      ['/api/v1/files?repo=ml/app', 400, 'DIGEST_INVALID'],
      ['/api/v1/files?repo=ml/app&layer=sha256:1234', 400, 'DIGEST_INVALID'],
      [`/api/v1/files?repo=ml/app&layer=sha256:${'0'.repeat(64)}`, 404, 'BLOB_UNKNOWN'],
      [`/api/v1/files?repo=ml/app&ref=v1&layer=${f.estargz.layer.digest}`, 404, 'BLOB_UNKNOWN'],
      [`/api/v1/files?repo=ml/app&ref=-x&layer=${f.image.layer.digest}`, 400, 'TAG_INVALID'],
      // A layer of another repository is not listed through this one.
      [`/api/v1/files?repo=ml/app&layer=${f.estargz.layer.digest}`, 404, 'BLOB_UNKNOWN'],
    ];
    for (const [path, status, code] of cases) {
      const r = await call(url, 'GET', path, { headers: alice });
      assert.equal(r.status, status, `${path}: ${r.body.toString()}`);
      assert.equal(errorCode(r), code, path);
    }
  });

  test('hostile annotations come back raw, as data', async () => {
    const a = await artifact('ml/hostile', 'v1');
    assert.equal(a.kind.label, 'Acme evil');
    assert.equal(a.files[0]!.path, '../../etc/"pass\r\nwd;\u0007\u202e.txt');
  });
});
