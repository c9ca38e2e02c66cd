import { rm } from 'node:fs/promises';
import { isOciError } from '../spec/index.js';
import { NotEstargzError, openEstargz, type EstargzOpenOptions } from './reader.js';
import { FileBlobSource } from './source.js';
import { openTarGz } from './targz.js';
import type { LayerFS } from './fs.js';
import type { RangedBlobSource } from './source.js';

export { buildEstargz, buildEstargzFile, type BuildOptions, type BuildResult } from './build.js';
export { openEstargz, EstargzReader, NotEstargzError, type EstargzOpenOptions } from './reader.js';
export { openTarGz, TarGzReader, type TarGzOpenOptions } from './targz.js';
export { FileBlobSource, BufferBlobSource, mergeRanges, type RangedBlobSource } from './source.js';
export { EstargzCache, defaultCacheDir, type CacheInfo, type CachedToc, type PruneOptions } from './toc-cache.js';
export { Tree, TreeFS, clampRange, type LayerFS, type FileStat, type FileType, type ReadRange } from './fs.js';
export {
  TOC_TAR_NAME,
  FOOTER_SIZE,
  LEGACY_FOOTER_SIZE,
  parseLegacyFooter,
  TOC_DIGEST_ANNOTATION,
  UNCOMPRESSED_SIZE_ANNOTATION,
  DEFAULT_CHUNK_SIZE,
  encodeFooter,
  parseFooter,
  parseToc,
  cleanName,
  type Toc,
  type TocEntry,
  type TocEntryType,
} from './toc.js';

export interface OpenLayerOptions extends EstargzOpenOptions {
  /** Called when the layer is not eStargz and is read whole instead. */
  onFallback?: (message: string) => void;
  /** For a plain tar.gz: stop when it unpacks to more than this. */
  maxUnpacked?: number;
}

/** Opens a layer as eStargz, or, when it has no eStargz footer, as a plain tar.gz read once. */
export async function openLayer(src: RangedBlobSource, opts: OpenLayerOptions = {}): Promise<LayerFS> {
  const { cache, layerDigest } = opts;
  const tarOpts = { ...opts, window: undefined };
  // A plain layer read before is in the cache whole: no network at all.
  const kept = cache && layerDigest ? await cache.blobFile(layerDigest) : undefined;
  if (kept && layerDigest) {
    try {
      const fs = await openTarGz(new FileBlobSource(kept), tarOpts);
      opts.onFallback?.(`${layerDigest} is not eStargz; reading the whole layer from the local cache`);
      await src.close?.();
      return fs;
    } catch (err) {
      if (!isOciError(err, 'DIGEST_INVALID') && !isOciError(err, 'SIZE_INVALID')) throw err;
      await cache!.dropBlob(layerDigest);
    }
  }
  try {
    return await openEstargz(src, opts);
  } catch (err) {
    if (!(err instanceof NotEstargzError)) throw err;
    opts.onFallback?.(`${layerDigest ?? 'the layer'} is not eStargz (${err.message}); reading the whole layer once`);
    const tmp = cache && layerDigest ? await cache.tempFile() : undefined;
    try {
      const fs = await openTarGz(src, { ...tarOpts, copyTo: tmp });
      if (tmp && layerDigest) await cache!.adoptBlob(layerDigest, tmp);
      return fs;
    } finally {
      if (tmp) await rm(tmp, { force: true });
    }
  }
}
