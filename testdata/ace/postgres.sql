CREATE TABLE public."AddonSettings" (
    id integer NOT NULL,
    "clientKey" character varying(255),
    key character varying(255),
    val json
);
CREATE SEQUENCE public."AddonSettings_id_seq"
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;
ALTER SEQUENCE public."AddonSettings_id_seq" OWNED BY public."AddonSettings".id;
CREATE TABLE public."ForgeSettings" (
    id integer NOT NULL,
    "installationId" character varying(255) NOT NULL,
    key character varying(255) NOT NULL,
    val json NOT NULL
);
CREATE SEQUENCE public."ForgeSettings_id_seq"
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;
ALTER SEQUENCE public."ForgeSettings_id_seq" OWNED BY public."ForgeSettings".id;
CREATE TABLE public."InstallationClientKeys" (
    id integer NOT NULL,
    "installationId" character varying(255) NOT NULL,
    "clientKey" character varying(255) NOT NULL
);
CREATE SEQUENCE public."InstallationClientKeys_id_seq"
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;
ALTER SEQUENCE public."InstallationClientKeys_id_seq" OWNED BY public."InstallationClientKeys".id;
ALTER TABLE ONLY public."AddonSettings" ALTER COLUMN id SET DEFAULT nextval('public."AddonSettings_id_seq"'::regclass);
ALTER TABLE ONLY public."ForgeSettings" ALTER COLUMN id SET DEFAULT nextval('public."ForgeSettings_id_seq"'::regclass);
ALTER TABLE ONLY public."InstallationClientKeys" ALTER COLUMN id SET DEFAULT nextval('public."InstallationClientKeys_id_seq"'::regclass);
INSERT INTO public."AddonSettings" VALUES (1, 'ace-fixture-1-0000-4000-8000-000000000001', 'clientInfo', '{"key":"tenon-checklist","clientKey":"ace-fixture-1-0000-4000-8000-000000000001","publicKey":"MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCfixture","sharedSecret":"fixture-shared-secret-1-do-not-use-in-production-0123456789","serverVersion":"100300","pluginsVersion":"1001.0.0-SNAPSHOT","baseUrl":"https://fixture-1.atlassian.net","displayUrl":"https://fixture-1.atlassian.net","productType":"jira","description":"Atlassian JIRA at https://fixture-1.atlassian.net","eventType":"installed","oauthClientId":"oauth-fixture-1","cloudId":"cloud-fixture-1","installationId":"ari:cloud:ecosystem::installation/0a1b2c3d-0000-4000-8000-000000000001","entitlementId":"ent-fixture-1","entitlementNumber":"E-FIX-1"}');
INSERT INTO public."AddonSettings" VALUES (2, 'ace-fixture-1-0000-4000-8000-000000000001', 'boardConfig', '{"columns":["To Do","Done"],"wip":3}');
INSERT INTO public."AddonSettings" VALUES (3, 'ace-fixture-1-0000-4000-8000-000000000001', 'counter', '42');
INSERT INTO public."AddonSettings" VALUES (4, 'ace-fixture-1-0000-4000-8000-000000000001', 'greeting', '"hello from ACE"');
INSERT INTO public."AddonSettings" VALUES (5, 'ace-fixture-2-0000-4000-8000-000000000002', 'clientInfo', '{"key":"tenon-checklist","clientKey":"ace-fixture-2-0000-4000-8000-000000000002","publicKey":"MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCfixture","sharedSecret":"fixture-shared-secret-2-do-not-use-in-production-0123456789","serverVersion":"100300","pluginsVersion":"1001.0.0-SNAPSHOT","baseUrl":"https://fixture-2.atlassian.net/wiki","displayUrl":"https://fixture-2.atlassian.net/wiki","productType":"confluence","description":"Atlassian JIRA at https://fixture-2.atlassian.net","eventType":"disabled","oauthClientId":"oauth-fixture-2","cloudId":"cloud-fixture-2"}');
INSERT INTO public."AddonSettings" VALUES (6, 'ace-fixture-2-0000-4000-8000-000000000002', 'spaceList', '["ENG","OPS"]');
INSERT INTO public."AddonSettings" VALUES (7, 'ace-fixture-3-0000-4000-8000-000000000003', 'clientInfo', '{"key":"tenon-checklist","clientKey":"ace-fixture-3-0000-4000-8000-000000000003","publicKey":"MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCfixture","sharedSecret":"fixture-shared-secret-3-do-not-use-in-production-0123456789","serverVersion":"100300","pluginsVersion":"1001.0.0-SNAPSHOT","baseUrl":"https://fixture-3.atlassian.net","displayUrl":"https://fixture-3.atlassian.net","productType":"jira","description":"Atlassian JIRA at https://fixture-3.atlassian.net","eventType":"uninstalled","oauthClientId":"oauth-fixture-3","cloudId":"cloud-fixture-3"}');
INSERT INTO public."ForgeSettings" VALUES (1, 'ari:cloud:ecosystem::installation/0a1b2c3d-0000-4000-8000-000000000001', 'forgeFlag', '{"on":true}');
INSERT INTO public."InstallationClientKeys" VALUES (1, 'ari:cloud:ecosystem::installation/0a1b2c3d-0000-4000-8000-000000000001', 'ace-fixture-1-0000-4000-8000-000000000001');
SELECT pg_catalog.setval('public."AddonSettings_id_seq"', 7, true);
SELECT pg_catalog.setval('public."ForgeSettings_id_seq"', 1, true);
SELECT pg_catalog.setval('public."InstallationClientKeys_id_seq"', 1, true);
ALTER TABLE ONLY public."AddonSettings"
    ADD CONSTRAINT "AddonSettings_pkey" PRIMARY KEY (id);
ALTER TABLE ONLY public."ForgeSettings"
    ADD CONSTRAINT "ForgeSettings_pkey" PRIMARY KEY (id);
ALTER TABLE ONLY public."InstallationClientKeys"
    ADD CONSTRAINT "InstallationClientKeys_pkey" PRIMARY KEY (id);
CREATE INDEX addon_settings_client_key_key ON public."AddonSettings" USING btree ("clientKey", key);
CREATE INDEX forge_settings_installation_id_key ON public."ForgeSettings" USING btree ("installationId", key);
CREATE INDEX installation_client_keys_client_key ON public."InstallationClientKeys" USING btree ("clientKey");
CREATE INDEX installation_client_keys_installation_id ON public."InstallationClientKeys" USING btree ("installationId");
