-- Transit hot path: gate devices, card state, tap records (idempotency), deny list, alerts,
-- daily collections. Ledger ids (128-bit) are numeric(39, 0).

CREATE TABLE transit_devices (
    device_id     text PRIMARY KEY,
    role          text NOT NULL CHECK (role IN ('gate', 'admin')),
    -- The operator whose account a gate's fares are credited to (gates only).
    operator_account_id numeric(39, 0),
    -- The fare network (engine.fares network id) the gate belongs to (gates only).
    network_id    text,
    CHECK ((role = 'gate') = (operator_account_id IS NOT NULL AND network_id IS NOT NULL)),
    -- The device's signing secret, sealed by the key service; never stored in clear.
    secret_sealed bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);

CREATE TABLE transit_cards (
    card_token       text PRIMARY KEY,
    account_id       numeric(39, 0) NOT NULL,
    bank_code        text NOT NULL,
    -- Rider profile from the cardholder record (engine.fares.riders.RiderProfile).
    birth_date       date,
    entitlements     text[] NOT NULL DEFAULT '{}',
    -- The rider category of the card's last priced tap (answered on declines).
    rider_category   text NOT NULL DEFAULT '',
    atc_max          integer NOT NULL DEFAULT -1,
    -- The most recent ATCs accepted and their ARQCs, newest last (replay and clone checks).
    atcs_recent      integer[] NOT NULL DEFAULT '{}',
    arqcs_recent     bytea[] NOT NULL DEFAULT '{}',
    -- Opaque fare-engine state (open journey, running totals), encoded by engine.fares.
    fare_state       bytea,
    -- Opaque alert-rule state (engine.alerts.AlertState as JSON).
    alert_state      bytea,
    enrolled_at      timestamptz NOT NULL DEFAULT now()
);

-- Which issuer key verifies the cryptograms of a card, by the longest matching PAN prefix.
CREATE TABLE transit_issuers (
    pan_prefix  text PRIMARY KEY CHECK (pan_prefix ~ '^[0-9]{4,12}$'),
    bank_code   text NOT NULL,
    key_label   text NOT NULL
);

CREATE TABLE transit_taps (
    tap_id           text PRIMARY KEY,
    device_id        text NOT NULL,
    card_token       text,
    -- The tap as received with the PAN replaced by its token: compared field by field
    -- when the same tap_id comes again.
    request          jsonb NOT NULL,
    reason           smallint NOT NULL,
    fare_minor       bigint NOT NULL CHECK (fare_minor >= 0),
    rider_category   text NOT NULL,
    day_total_minor  bigint NOT NULL,
    day_cap_minor    bigint NOT NULL,
    transit_day      date,
    station          text NOT NULL,
    direction        text NOT NULL,
    tapped_at        timestamptz NOT NULL,
    transfer_id      numeric(39, 0),
    recorded_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transit_taps_card ON transit_taps (card_token, tapped_at);
CREATE INDEX transit_taps_day ON transit_taps (transit_day) WHERE fare_minor > 0;

CREATE TABLE transit_deny_list (
    card_token  text NOT NULL,
    reason      text NOT NULL CHECK (reason IN ('lost', 'closed', 'unpaid_debt')),
    listed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (card_token, reason)
);

CREATE TABLE transit_alerts (
    alert_id    bigserial PRIMARY KEY,
    kind        text NOT NULL,
    card_token  text,
    tap_id      text,
    detail      text NOT NULL,
    raised_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transit_alerts_raised ON transit_alerts (raised_at);

CREATE TABLE transit_collections (
    card_token    text NOT NULL,
    transit_day   date NOT NULL,
    bank_code     text NOT NULL,
    amount_minor  bigint NOT NULL CHECK (amount_minor > 0),
    status        text NOT NULL DEFAULT 'requested'
                  CHECK (status IN ('requested', 'collected', 'declined', 'cleared')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (card_token, transit_day)
);
