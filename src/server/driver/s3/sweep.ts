import { AbortMultipartUploadCommand, ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { Head } from './files.js';
import type { Bucket } from './outputs.js';
import { INTERNAL, tailsOf, type SessionState } from './session.js';

/** What the sweep needs of the driver. */
export interface SweepDeps {
  readonly b: Bucket;
  readonly prefix: string;
  head(key: string): Promise<Head | undefined>;
  readState(key: string): Promise<SessionState>;
  deleteKey(key: string): Promise<void>;
}

/**
 * The bucket's part of sweepTemp: multipart uploads and `_s3/` objects (tails, sealed uploads,
 * staged fills, touch markers) that nothing refers to any more and that are older than `cutoff`
 * (ms since the epoch). Returns how many went.
 */
export async function sweepObjects(deps: SweepDeps, cutoff: number): Promise<number> {
  let n = 0;
  const live = new Map<string, SessionState | undefined>();
  const stateOf = async (fileKey: string): Promise<SessionState | undefined> => {
    if (!live.has(fileKey)) {
      const h = await deps.head(fileKey);
      live.set(fileKey, h?.appendable ? await deps.readState(fileKey) : undefined);
    }
    return live.get(fileKey);
  };
  // Multipart uploads: a session's is kept while its record refers to it; any other (a write a
  // crash interrupted) goes once old.
  let marker: { key?: string; id?: string } = {};
  do {
    const r = await deps.b.call('list multipart uploads', deps.prefix, (signal) =>
      deps.b.s3.send(new ListMultipartUploadsCommand({ Bucket: deps.b.name, Prefix: deps.prefix, ...(marker.key ? { KeyMarker: marker.key, UploadIdMarker: marker.id } : {}) }), { abortSignal: signal }),
    );
    for (const u of r.Uploads ?? []) {
      if (!u.Key || !u.UploadId || (u.Initiated?.getTime() ?? 0) > cutoff) continue;
      const partsOf = `${deps.prefix}${INTERNAL}/parts/`;
      if (u.Key.startsWith(partsOf)) {
        const s = await stateOf(u.Key.slice(partsOf.length));
        if (s && (s.uploadId === u.UploadId || s.prev?.uploadId === u.UploadId)) continue;
      }
      await deps.b.s3.send(new AbortMultipartUploadCommand({ Bucket: deps.b.name, Key: u.Key, UploadId: u.UploadId })).catch(() => undefined);
      n++;
    }
    marker = r.IsTruncated ? { key: r.NextKeyMarker!, id: r.NextUploadIdMarker! } : {};
  } while (marker.key);
  // The driver's objects: staged bytes, tails and sealed uploads no record refers to.
  const internal = `${deps.prefix}${INTERNAL}/`;
  let token: string | undefined;
  do {
    const r = await deps.b.call('list', internal, (signal) => deps.b.s3.send(new ListObjectsV2Command({ Bucket: deps.b.name, Prefix: internal, ...(token ? { ContinuationToken: token } : {}) }), { abortSignal: signal }));
    for (const o of r.Contents ?? []) {
      if (!o.Key || (o.LastModified?.getTime() ?? 0) > cutoff) continue;
      const rest = o.Key.slice(internal.length);
      let used = false;
      if (rest.startsWith('tail/')) {
        const fileKey = rest.slice('tail/'.length, rest.lastIndexOf('/'));
        used = tailsOf(await stateOf(fileKey)).includes(o.Key);
      } else if (rest.startsWith('parts/')) {
        const s = await stateOf(rest.slice('parts/'.length));
        used = s?.sealed === true || s?.prev?.sealed === true;
      } else if (rest.startsWith('touched/')) {
        used = (await deps.head(`${deps.prefix}${rest.slice('touched/'.length)}`)) !== undefined;
      }
      if (!used) {
        await deps.deleteKey(o.Key);
        n++;
      }
    }
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
  return n;
}
