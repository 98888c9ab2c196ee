-- ModifyVpcAttribute: whether the VPC's resolver answers (enableDnsSupport),
-- whether its instances get public DNS names (enableDnsHostnames), both on
-- by default as in a default VPC, and enableNetworkAddressUsageMetrics.
ALTER TABLE vpcs ADD COLUMN enable_dns_support INTEGER NOT NULL DEFAULT 1;
ALTER TABLE vpcs ADD COLUMN enable_dns_hostnames INTEGER NOT NULL DEFAULT 1;
ALTER TABLE vpcs ADD COLUMN enable_network_address_usage_metrics INTEGER NOT NULL DEFAULT 0;
