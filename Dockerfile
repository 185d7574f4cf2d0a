# llmrelay proxy image: `docker build -t llmrelay .`, then
#   docker run -p 4000:4000 -e OPENAI_API_KEY llmrelay                     (the config below)
#   docker run -v $PWD/config.yaml:/etc/llmrelay/config.yaml:ro llmrelay   (your own)
#   docker run llmrelay --config /path/inside/the/image.yaml --workers 2  (arguments replace CMD)

# Build stage: llmrelay and its dependencies installed into a virtualenv (all from wheels: no compiler needed).
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY llmrelay ./llmrelay
# pip compiles the bytecode here: containers start without compiling (or writing) any
RUN /opt/venv/bin/pip install --prefer-binary .

# Runtime stage: the virtualenv only, run by an unprivileged user.
FROM python:3.11-slim
RUN groupadd --system --gid 10001 llmrelay \
    && useradd --system --uid 10001 --gid llmrelay --home-dir /var/lib/llmrelay --shell /usr/sbin/nologin llmrelay \
    && mkdir -p /var/lib/llmrelay /etc/llmrelay \
    && chown llmrelay:llmrelay /var/lib/llmrelay
COPY --from=build /opt/venv /opt/venv
COPY deploy/image-config.yaml /etc/llmrelay/config.yaml
# LLMRELAY_STORE: the SQLite store when the config names no database_url; on the volume so
# responses outlive the container. PORT: the port llmrelay listens on and the healthcheck asks.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LLMRELAY_STORE=/var/lib/llmrelay/responses.db \
    PORT=4000
VOLUME /var/lib/llmrelay
WORKDIR /var/lib/llmrelay
USER 10001:10001
EXPOSE 4000
# No curl in a slim image: the interpreter asks the liveness route, bypassing any HTTP proxy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.build_opener(r.ProxyHandler({})).open('http://127.0.0.1:' + os.environ.get('PORT', '4000') + '/health/liveliness', timeout=4)"]
# uvicorn drains in-flight requests on SIGTERM for general_settings.graceful_shutdown_timeout
# (30 s by default): give `docker stop -t` / stop_grace_period more than that.
ENTRYPOINT ["llmrelay"]
CMD ["--config", "/etc/llmrelay/config.yaml"]
