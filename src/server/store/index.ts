export { RegistryStore, type BlobCheck, type RegistryStoreOptions, type StoredManifest, type PutManifestResult } from './registry.js';
export { Uploads, type UploadStatus, type AppendOptions, type StaleUpload } from './uploads.js';
export { paths } from './paths.js';
