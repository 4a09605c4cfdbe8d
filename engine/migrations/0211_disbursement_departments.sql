-- Departments on the HTTP API: a department's users are signing devices of role
-- 'department' (one key per person, so maker and checker are told apart by the signature),
-- and a programme belongs to at most one department, which alone sees its batches.

ALTER TABLE transit_devices DROP CONSTRAINT transit_devices_role_check;
ALTER TABLE transit_devices ADD CONSTRAINT transit_devices_role_check
    CHECK (role IN ('gate', 'admin', 'department'));

CREATE TABLE disbursement_department_users (
    device_id   text PRIMARY KEY REFERENCES transit_devices,
    department  text NOT NULL CHECK (department ~ '^[A-Za-z0-9_-]{1,32}$')
);

ALTER TABLE disbursement_programmes ADD COLUMN department text
    CHECK (department ~ '^[A-Za-z0-9_-]{1,32}$');
