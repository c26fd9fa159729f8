#!/bin/sh
# Idempotent, run by the one-shot minio-init service on every `up`: the TwinOps bucket, a policy
# that covers that bucket only, and the application user (S3_ACCESS_KEY_ID) holding that policy.
set -eu

mc alias set twinops http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "twinops/$S3_BUCKET"

policy=/tmp/twinops-bucket-policy.json
printf '%s\n' "{
  \"Version\": \"2012-10-17\",
  \"Statement\": [
    {\"Effect\": \"Allow\",
     \"Action\": [\"s3:ListBucket\", \"s3:GetBucketLocation\", \"s3:ListBucketMultipartUploads\"],
     \"Resource\": [\"arn:aws:s3:::$S3_BUCKET\"]},
    {\"Effect\": \"Allow\",
     \"Action\": [\"s3:GetObject\", \"s3:PutObject\", \"s3:DeleteObject\",
                  \"s3:AbortMultipartUpload\", \"s3:ListMultipartUploadParts\"],
     \"Resource\": [\"arn:aws:s3:::$S3_BUCKET/*\"]}
  ]
}" > "$policy"
mc admin policy create twinops twinops-bucket "$policy"
mc admin user add twinops "$S3_ACCESS_KEY_ID" "$S3_SECRET_ACCESS_KEY"
# Attaching an attached policy is an error in mc: that case is the idempotent one.
mc admin policy attach twinops twinops-bucket --user "$S3_ACCESS_KEY_ID" \
  || echo "policy twinops-bucket already attached to the application user"
echo "bucket $S3_BUCKET ready"
