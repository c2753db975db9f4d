#!/usr/bin/env bash
# Bootstraps a deployment: migrates the Airflow metadata database and the sync-state database,
# creates the cerkl_api pool and the cerkl_organization_id and cerkl_sync_config Variables
# where they are missing, and hands the shared volumes to AIRFLOW_UID.
#
# It is safe to run on every start because an existing pool or Variable is left as the
# operator set it.
# Exits non-zero on the first failed step.
set -euo pipefail

deploy_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

echo "Migrating the Airflow metadata database"
airflow db migrate

echo "Migrating the sync-state database"
python -m include.cerkl_sync.state migrate

echo "Creating the missing pools and Variables"
python "${deploy_dir}/bootstrap_airflow.py"

# Named volumes are created owned by the image's airflow user. Files that the steps above
# wrote as root, and a non-default AIRFLOW_UID, need the ownership fixed.
if [[ "$(id -u)" == "0" ]]; then
    for shared_dir in /opt/airflow/logs /opt/airflow/shared /opt/airflow/cerkl_sync_reports; do
        if [[ -d "${shared_dir}" ]]; then
            chown -R "${AIRFLOW_UID:-50000}:0" "${shared_dir}"
        fi
    done
fi

echo "Bootstrap finished"
