export { RegistryStore, type RegistryStoreOptions, type StoreChange, type StoreListener } from './registry.js';
export { paginate, type BlobHandle, type Listed, type Page, type PutManifestResult, type RegistryBackend, type StoredManifest } from './backend.js';
export { type UploadStatus, type AppendOptions, type StaleUpload } from './uploads.js';
export { collectGarbage, type GcOptions, type GcReport } from './gc.js';
export { cachedNamespaces, listCache, pruneCache, type CachedImage, type PruneOptions, type PruneReport } from './cached.js';
export { isManifestRef } from './paths.js';
