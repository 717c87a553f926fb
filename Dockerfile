# logging-proxy and log-server in one image (docker-compose.yml runs one container of each).
#
#   docker build -t logging-proxy .      or      docker compose up --build
#
# Every Debian package comes from scripts/install-deps.sh, the one package list the README's
# install step uses too (`build` here, `runtime` in the final image). Installing packages any
# other way in this file fails CI (scripts/check-docker-packages.sh).

# --- build stage: the same Debian release and packages as a bare-metal build --------------------
FROM debian:bookworm AS build
WORKDIR /src
# The package list first, alone, so the dependency layer is reused until the list changes.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh build && rm -rf /var/lib/apt/lists/*
COPY . .
# LP_WERROR=OFF: warnings fail the build in CI (scripts/test.sh), not in an image build.
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DLP_BUILD_TESTS=OFF -DLP_WERROR=OFF \
 && cmake --build /build -j"$(nproc)" --target logging-proxy log-server

# --- runtime stage: shared libraries only, no compiler, no headers, non-root --------------------
FROM debian:bookworm-slim
COPY scripts/install-deps.sh /tmp/install-deps.sh
# /data (log server) and /spool (proxy) exist owned by the app user, so the named volumes that
# docker-compose.yml mounts there start out writable by it; /app too, for a config that keeps
# the default relative data_dir (logs) and spool_dir (spool). /data and /spool are 0700: they
# hold prompts and responses, and a new named volume copies the mode of the directory it is
# mounted on (the log server warns about a data dir group or others can read).
RUN /tmp/install-deps.sh runtime \
 && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh \
 && useradd --uid 10001 --user-group --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin app \
 && mkdir -p /app/config /data /spool \
 && chown app:app /app /data /spool \
 && chmod 0700 /data /spool
COPY --from=build /build/bin/logging-proxy /build/bin/log-server /usr/local/bin/
# The example configs, at the same place docker-compose.yml mounts ./config (read-only).
COPY config/ /app/config/
WORKDIR /app
USER app
EXPOSE 5601 8080
# The proxy on the default config. docker-compose.yml runs both processes on
# /app/config/docker.yaml (listeners on 0.0.0.0, log server at http://log-server:8080). With
# plain `docker run`, mount your own config at /app/config/config.yaml (`host: "0.0.0.0"`), or
# name the command: `docker run IMAGE logging-proxy --config /app/config/docker.yaml`.
CMD ["logging-proxy", "--config", "/app/config/config.yaml"]
