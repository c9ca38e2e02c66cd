import { Counter, Gauge, type Registry } from 'prom-client';

/** Per-namespace counters of the pull-through cache, on the server's `/metrics`. */
export interface ProxyMetrics {
  hits: Counter<'namespace' | 'kind'>;
  misses: Counter<'namespace' | 'kind'>;
  /** Requests that joined a fetch already under way instead of going upstream. */
  coalesced: Counter<'namespace' | 'kind'>;
  upstreamBytes: Counter<'namespace'>;
  upstreamRequests: Counter<'namespace' | 'kind'>;
  errors: Counter<'namespace' | 'kind'>;
  revalidations: Counter<'namespace' | 'result'>;
  stale: Counter<'namespace'>;
  inflight: Gauge<'namespace'>;
}

export function createProxyMetrics(registry: Registry): ProxyMetrics {
  const registers = [registry];
  return {
    hits: new Counter({ name: 'wharf_proxy_hits_total', help: 'Proxied requests answered from the cache', labelNames: ['namespace', 'kind'] as const, registers }),
    misses: new Counter({ name: 'wharf_proxy_misses_total', help: 'Proxied requests that needed the upstream', labelNames: ['namespace', 'kind'] as const, registers }),
    coalesced: new Counter({ name: 'wharf_proxy_coalesced_total', help: 'Misses that joined an upstream fetch already under way', labelNames: ['namespace', 'kind'] as const, registers }),
    upstreamBytes: new Counter({ name: 'wharf_proxy_upstream_bytes_total', help: 'Bytes received from upstreams', labelNames: ['namespace'] as const, registers }),
    upstreamRequests: new Counter({ name: 'wharf_proxy_upstream_requests_total', help: 'Requests sent to upstreams', labelNames: ['namespace', 'kind'] as const, registers }),
    errors: new Counter({ name: 'wharf_proxy_upstream_errors_total', help: 'Upstream failures: unreachable, refused, bad content', labelNames: ['namespace', 'kind'] as const, registers }),
    revalidations: new Counter({ name: 'wharf_proxy_revalidations_total', help: 'Tag revalidations, by result (unchanged, changed, failed)', labelNames: ['namespace', 'result'] as const, registers }),
    stale: new Counter({ name: 'wharf_proxy_stale_total', help: 'Responses served from the cache because the upstream failed', labelNames: ['namespace'] as const, registers }),
    inflight: new Gauge({ name: 'wharf_proxy_inflight_fetches', help: 'Upstream blob fetches under way', labelNames: ['namespace'] as const, registers }),
  };
}
