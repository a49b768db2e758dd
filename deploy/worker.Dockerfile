# syntax=docker/dockerfile:1
# Kaon worker image, built from the project root (docker compose builds it; or:
#   docker build -f deploy/worker.Dockerfile --target worker -t kaon-worker .).
# Targets: `worker` (Node only: pipelines and TS steps), `worker-python` (plus Python 3 with venv for python() steps,
# and R with jsonlite for command(['Rscript', …]) steps routed there with queue: 'python').

FROM node:20.19.5-bookworm-slim AS worker
WORKDIR /app
ENV NODE_ENV=production \
    KAON_HOME=/var/lib/kaon
# Dependencies first, so source edits do not reinstall them. Kaon runs TypeScript through tsx (a dependency).
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY python ./python
COPY r ./r
COPY workflows ./workflows
COPY activities ./activities
# Writable by the unprivileged user: Kaon's cache (KAON_HOME) and the artifact volume's mount point (a named
# volume copies this ownership when it is first created).
RUN mkdir -p /var/lib/kaon /artifacts && chown node:node /var/lib/kaon /artifacts
USER node
# Connects through Temporal's envconfig variables (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, …).
CMD ["node", "bin/kaon.js", "worker"]

FROM worker AS worker-python
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-pip r-base-core r-cran-jsonlite \
 && rm -rf /var/lib/apt/lists/*
USER node
CMD ["node", "bin/kaon.js", "worker", "--queues", "python"]
