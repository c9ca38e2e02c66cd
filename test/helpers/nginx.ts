/**
 * nginx (Debian's nginx-light) as the round-robin load balancer in front of several `wharf serve`
 * replicas, on loopback, with the settings docs/SCALE-OUT.md gives: request and response bodies
 * streamed (no buffering, no size limit), HTTP/1.1 with keep-alive to the replicas, the client's
 * Host kept (so Location headers name the balancer). A test that needs it skips with a reason on
 * a laptop, and fails under CI=true.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './distribution.js';
import { skipOrFail } from './cluster.js';

const NGINX = process.env.NGINX_BIN ?? '/usr/sbin/nginx';

export function missingNginx(): string | undefined {
  return skipOrFail(existsSync(NGINX) ? undefined : `nginx is not installed (${NGINX}: apt-get install nginx-light)`);
}

export interface Balancer {
  url: string;
  stop(): Promise<void>;
}

/** The config: one round-robin upstream of `backends` (`127.0.0.1:<port>`), listening on `port`. */
export function nginxConfig(dir: string, port: number, backends: string[]): string {
  return `
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  upstream wharf {
    ${backends.map((b) => `server ${b} max_fails=1 fail_timeout=2s;`).join('\n    ')}
    # Idle connections kept per worker, over all replicas: enough for every request in flight, or
    # nginx closes and reopens connections to the replicas under load (measured with 3 replicas
    # and 50 clients at 32: one new connection per 10 requests, half the GETs per second).
    keepalive 256;
    keepalive_requests 100000;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 0;
    location / {
      proxy_pass http://wharf;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_read_timeout 300s;
      proxy_send_timeout 300s;
      # A replica that is gone (refused, reset before an answer): the request goes to the next one,
      # a POST or PATCH too. With bodies streamed, nginx retries only while it has sent none of
      # the body, so a chunk is never appended twice.
      proxy_next_upstream error timeout non_idempotent;
    }
  }
}
`;
}

export async function startNginx(backends: string[]): Promise<Balancer> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-nginx-'));
  await mkdir(join(dir, 'body'));
  await mkdir(join(dir, 'proxy'));
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  await writeFile(conf, nginxConfig(dir, port, backends));
  const test = spawnSync(NGINX, ['-t', '-c', conf, '-p', dir, '-e', join(dir, 'error.log')], { encoding: 'utf8' });
  if (test.status !== 0) throw new Error(`nginx -t: ${test.stderr}`);
  const child: ChildProcess = spawn(NGINX, ['-c', conf, '-p', dir, '-e', join(dir, 'error.log'), '-g', 'daemon off;'], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    // Up once a registry answers through it (200, or 401 from one with auth), not nginx's own 502.
    const up = await fetch(`${url}/v2/`).then(
      async (r) => (await r.arrayBuffer(), r.status < 500),
      () => false,
    );
    if (up) break;
    if (i === 99) {
      // TERM, not KILL: the master then ends its workers, which a killed master leaves serving.
      child.kill('SIGTERM');
      throw new Error(`nginx did not answer on ${url}`);
    }
    await sleep(50);
  }
  return {
    url,
    stop: async () => {
      if (child.exitCode === null) {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGQUIT');
        // A graceful stop waits for open connections; past 5 s a fast one (TERM) still ends the workers.
        await Promise.race([gone, sleep(5000).then(() => child.kill('SIGTERM'))]);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
