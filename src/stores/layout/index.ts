export { LayoutStore, LAYOUT_FILE, INDEX_FILE, type LayoutOptions } from './dir.js';
export { LayoutTarStore } from './tar.js';
export { DockerArchive, openImageArchive, type DockerImage, type ImageArchive } from './docker.js';
