-- One database per service: nothing reads another service's database (SPEC §3).
CREATE DATABASE legacy_db;
CREATE DATABASE orders_db;
CREATE DATABASE inventory_db;
