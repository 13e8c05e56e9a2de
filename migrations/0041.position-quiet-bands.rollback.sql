DROP TABLE IF EXISTS position_quiet_bands;
