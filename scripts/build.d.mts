// Types of what bench/ui.ts imports from the plain-JavaScript build script (build.mjs).

export interface FirstPage {
  /** Bytes as stored. */
  raw: number;
  /** Bytes gzipped (each file's .gz twin, as the server sends them). */
  gzip: number;
  /** The files counted, relative to the UI's folder. */
  files: string[];
}

export function firstPageSize(dir?: string): FirstPage;
export function staleReason(): string | undefined;
export function webStaleReason(): string | undefined;
export function buildWeb(): Promise<{ ms: number; firstPage: FirstPage; files: string[] }>;
