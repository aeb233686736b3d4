# The rewind image used by docker-compose.yml: the CLI, the control worker and the agents.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src src
COPY bench bench
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
# restic >= 0.17 (Debian's package is older); flock comes with util-linux.
COPY --from=restic/restic:0.19.1 /usr/bin/restic /usr/local/bin/restic
WORKDIR /app
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/lib lib
COPY package.json ./
COPY bin bin
RUN ln -s /app/bin/rewind /usr/local/bin/rewind
ENTRYPOINT ["rewind"]
