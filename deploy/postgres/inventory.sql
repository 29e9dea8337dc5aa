-- Source database for the local Meshlet stack (docker-compose.yml).
-- Runs once, when the postgres container initialises an empty data directory.
-- Debezium captures inventory.products into the topic dbserver1.inventory.products.

CREATE SCHEMA IF NOT EXISTS inventory;

CREATE TABLE inventory.products (
    id          SERIAL PRIMARY KEY,
    name        VARCHAR(255) NOT NULL,
    description VARCHAR(512),
    weight      DOUBLE PRECISION
);

-- Full before-images on UPDATE and DELETE, so change events carry every column
-- of the old row, not just the primary key.
ALTER TABLE inventory.products REPLICA IDENTITY FULL;

INSERT INTO inventory.products (name, description, weight) VALUES
    ('trail bike',        'aluminium frame, 29 inch wheels',          13.4),
    ('rain jacket',       'three-layer shell with taped seams',        0.41),
    ('camping stove',     'single burner, runs on isobutane',          0.29),
    ('trekking poles',    'pair, carbon, adjustable 100-135 cm',       0.48),
    ('headlamp',          NULL,                                         0.09),
    ('water filter',      'hollow fibre, 0.1 micron',                  0.07),
    ('sleeping pad',      'inflatable, R-value 4.2',                   0.52),
    ('repair kit',        'tyre levers, patches, mini pump',           NULL);
