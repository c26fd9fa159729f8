# First start of an empty data volume only; sourced by the mongo image's entrypoint once the root
# user exists (mongod runs on 127.0.0.1 without --replSet at that point). Creates the application
# user `twin`: read and write, indexes and validators on the `twin` database, nothing else.
mongosh "mongodb://127.0.0.1:27017/admin" --quiet \
  --username "$MONGO_INITDB_ROOT_USERNAME" --password "$MONGO_INITDB_ROOT_PASSWORD" \
  --authenticationDatabase admin --eval '
    if (!process.env.MONGO_TWIN_PASSWORD) {
      throw new Error("MONGO_TWIN_PASSWORD is not set");
    }
    db.getSiblingDB("admin").createUser({
      user: "twin",
      pwd: process.env.MONGO_TWIN_PASSWORD,
      roles: [{ role: "readWrite", db: "twin" }, { role: "dbAdmin", db: "twin" }],
    });
  '
