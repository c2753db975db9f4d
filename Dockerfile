# Image for every Airflow component of the Cerkl <-> Salesforce sync and for the sandbox
# servers: the official Airflow image plus the locked dependencies and the DAG package.
FROM apache/airflow:3.3.2-python3.11

# Named volumes start with the ownership of these folders, so the shared batch and XCom
# storage, the run reports and the sandbox data stay writable for any AIRFLOW_UID in group 0.
# User 0 is root and 50000 is the image's airflow user (numeric ids resolve on any host).
USER 0
RUN mkdir -p /opt/airflow/shared/batches /opt/airflow/shared/xcom \
        /opt/airflow/cerkl_sync_reports /data \
    && chown -R airflow:0 /opt/airflow/shared /opt/airflow/cerkl_sync_reports /data \
    && chmod -R g+rwX /opt/airflow/shared /opt/airflow/cerkl_sync_reports /data
USER 50000

# Installing the lock together with the apache-airflow pin makes pip fail on any lock entry
# that would move Airflow off the version this base image ships. The lock already pins every
# transitive dependency, so no constraints file is downloaded.
COPY requirements.lock /opt/airflow/requirements.lock
RUN pip install --no-cache-dir "apache-airflow==3.3.2" -r /opt/airflow/requirements.lock

# The compose file mounts these folders over the copies. The copies serve images run
# without mounts, for example on Kubernetes.
COPY dags/ /opt/airflow/dags/
COPY plugins/ /opt/airflow/plugins/
COPY include/ /opt/airflow/include/
COPY deploy/ /opt/airflow/deploy/
ENV PYTHONPATH=/opt/airflow
