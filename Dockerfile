# One image for every role: `docker run gemello <command>` (serve, gateway, actors, projections,
# migrate, replay, verify, doctor…; `help` lists them). Node 24 runs the TypeScript sources as
# they are, so there is no build step: the deps stage installs the production dependencies only
# (no Deno, no TypeScript, no test tools) and the runtime stage adds the sources.
# test/integration/deploy.test.ts runs this image's start command outside a container exactly as
# below (uid 1000, code owned by root, data on a writable path), reading this file and
# .dockerignore to do it.

FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:24-bookworm-slim AS runtime
WORKDIR /app
# espeak-ng: the offline voice of a deployment without an OpenAI key (speech is on in compose and
# Kubernetes); without it every reply of such a deployment would end in AudioFailed.
RUN apt-get update && apt-get install -y --no-install-recommends espeak-ng \
 && rm -rf /var/lib/apt/lists/*
# Code and dependencies belong to root and are only read: uid 1000 cannot change them even
# where the root filesystem is writable; mount it read-only anyway (compose and Kubernetes do).
COPY --from=deps /app/node_modules ./node_modules
# The sources as they are; .dockerignore leaves out what the image does not run (tests,
# benchmarks, infra, Deno's entry) and anything local (data, secrets, env files).
COPY . .
# `gemello` on PATH; /data is the one place the process writes (embedded log and PGlite),
# a volume so that a read-only root filesystem still works.
RUN ln -s /app/cli/gemello.ts /usr/local/bin/gemello \
 && mkdir /data && chown 1000:1000 /data
ENV GEMELLO_DATA_DIR=/data HOST=0.0.0.0 PORT=3000 GEMELLO_OPS_PORT=3000
USER 1000:1000
VOLUME ["/data"]
EXPOSE 3000
# The gateway answers /health on PORT; actor hosts and projections on GEMELLO_OPS_PORT.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "const e=process.env,u=(p)=>fetch('http://127.0.0.1:'+p+'/health').then((r)=>{if(!r.ok)throw 0});u(e.PORT||3000).catch(()=>u(e.GEMELLO_OPS_PORT||3000)).then(()=>process.exit(0),()=>process.exit(1))"]
ENTRYPOINT ["gemello"]
CMD ["serve"]
