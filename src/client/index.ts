export { openTarget, splitLayoutRef, canStatBlob, type OpenedTarget, type OpenTargetOptions, type AnyTarget, type BlobStater } from './targets.js';
export { pushArtifact, readAnnotationFile, titleFor, DEFAULT_ARTIFACT_TYPE, DEFAULT_CONFIG_TYPE_V1_0, MODE_ANNOTATION, type PushOptions, type PushResult, type FileSpec } from './push.js';
export { pullArtifact, parsePlatform, platformMatches, type PullOptions, type PullResult, type PulledFile } from './pull.js';
export { copyArtifact, copyTags, discoverReferrers, selectPlatform, graphOptions, type CopyArtifactOptions, type BackupOptions, type ReferrerNode } from './copy.js';
export { LocalSource, withProgress, type ProgressListener } from './source.js';
export { DigestMemo, DIGEST_MEMO_MAX_ENTRIES, type MemoHit, type DigestMemoOptions } from './memo.js';
export { createIndex, updateIndex, describeForIndex, type IndexOptions } from './indexes.js';
export { pushEstargz, openArtifact, getFiles, selectEntries, globToRegExp, GET_DEFAULTS, type EstargzPushOptions, type EstargzPushResult, type OpenArtifactOptions, type OpenedArtifact, type GetOptions, type GetResult } from './estargz.js';
