-- Creates the warehouse database and role next to Airflow's metadata database.
CREATE ROLE tsmetrics LOGIN PASSWORD 'tsmetrics';
CREATE DATABASE tsmetrics OWNER tsmetrics;
