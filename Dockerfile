# landreg service image: the Python package with its committed contract artifact.
# (The chain runs in its own container; compiling contracts is a development task, not done here.)
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY hybrid_store ./hybrid_store
COPY registry_service ./registry_service
COPY migration_tools ./migration_tools
RUN pip install --no-cache-dir -c constraints.txt . && useradd --create-home landreg
USER landreg
ENV LANDREG_HOME=/home/landreg/.landreg
ENTRYPOINT ["landreg"]
