-- The atlassian_host table of an atlassian-connect-spring-boot app, in
-- the shape its JPA entity AtlassianHost (atlassian-connect-spring-boot-jpa-starter)
-- gives it: one row per host, snake_case columns, auditing times.
-- ACSB records an uninstall as addon_installed = false and keeps no
-- enabled/disabled state and no app key. Written for tenon's import tests;
-- it runs on PostgreSQL and SQLite alike.
CREATE TABLE atlassian_host (
    client_key varchar(255) NOT NULL PRIMARY KEY,
    shared_secret varchar(255) NOT NULL,
    base_url varchar(255) NOT NULL,
    display_url varchar(255),
    display_url_servicedesk_help_center varchar(255),
    product_type varchar(255),
    description varchar(255),
    service_entitlement_number varchar(255),
    entitlement_id varchar(255),
    entitlement_number varchar(255),
    oauth_client_id varchar(255),
    installation_id varchar(255),
    cloud_id varchar(255),
    capability_set varchar(255),
    addon_installed boolean NOT NULL,
    created_date timestamp,
    last_modified_date timestamp,
    created_by varchar(255),
    last_modified_by varchar(255)
);
INSERT INTO atlassian_host VALUES ('acsb-fixture-1-0000-4000-8000-000000000001', 'acsb-shared-secret-1-do-not-use-in-production-0123456789',
    'https://acsb-1.atlassian.net', 'https://acsb-1.atlassian.net', NULL, 'jira', 'Atlassian JIRA at https://acsb-1.atlassian.net',
    'SEN-1000001', 'ent-acsb-1', 'E-ACSB-1', 'oauth-acsb-1', NULL, 'cloud-acsb-1', NULL, true,
    '2025-01-10 09:00:00', '2025-06-01 12:30:00.250', NULL, NULL);
INSERT INTO atlassian_host VALUES ('acsb-fixture-2-0000-4000-8000-000000000002', 'acsb-shared-secret-2-do-not-use-in-production-0123456789',
    'https://acsb-2.atlassian.net/wiki', 'https://acsb-2.atlassian.net/wiki', NULL, 'confluence', 'Atlassian Confluence at https://acsb-2.atlassian.net/wiki',
    NULL, NULL, NULL, 'oauth-acsb-2', 'ari:cloud:ecosystem::installation/acsb-0000-4000-8000-000000000002', 'cloud-acsb-2', NULL, true,
    '2025-02-11 10:00:00', '2025-02-11 10:00:00', NULL, NULL);
INSERT INTO atlassian_host VALUES ('acsb-fixture-3-0000-4000-8000-000000000003', 'acsb-shared-secret-3-do-not-use-in-production-0123456789',
    'https://acsb-3.atlassian.net', NULL, NULL, 'jira', 'Atlassian JIRA at https://acsb-3.atlassian.net',
    NULL, NULL, NULL, 'oauth-acsb-3', NULL, NULL, NULL, false,
    '2025-03-12 11:00:00', '2025-07-04 08:15:00', NULL, NULL);
