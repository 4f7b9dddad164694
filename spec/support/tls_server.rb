# frozen_string_literal: true

require "fileutils"
require "open3"
require "tmpdir"

# A PostgreSQL server with TLS, and the certificates it and its clients use, made at test time
# with the openssl command (docs/architecture.md section 13): a CA, a server certificate naming only
# "localhost" (so 127.0.0.1 fails a host name check), a client certificate for the role
# "certuser" (which the server's pg_hba.conf makes authenticate by certificate over TLS), and a
# second CA nobody signed with.
module TlsServer
  Certificates = Struct.new(:dir, :ca, :server_cert, :server_key, :client_cert, :client_key, :other_ca,
                            keyword_init: true)

  CLIENT_ROLE = "certuser"

  module_function

  # @return [Certificates] made once per run
  def certificates
    @certificates ||= make_certificates
  end

  # Starts a cluster of its own with ssl on (see Clusters.start_cluster); the caller stops it.
  # @return [SchemaFence::Cluster]
  def start
    certs = certificates
    hba = File.join(certs.dir, "pg_hba.conf")
    File.write(hba, <<~HBA)
      local all all trust
      hostssl all #{CLIENT_ROLE} 127.0.0.1/32 cert
      host all all 127.0.0.1/32 trust
      host all all ::1/128 trust
    HBA
    File.chmod(0o644, hba)
    Clusters.start_cluster(settings: { ssl: true, ssl_cert_file: certs.server_cert, ssl_key_file: certs.server_key,
                                       ssl_ca_file: certs.ca, hba_file: hba })
  end

  def make_certificates
    dir = Dir.mktmpdir("schema_fence-tls-")
    at_exit { FileUtils.rm_rf(dir) }
    File.chmod(0o755, dir)
    path = ->(name) { File.join(dir, name) }
    authority(path, "ca", "schema_fence test CA")
    authority(path, "other_ca", "another CA")
    signed(path, "server", "localhost", "subjectAltName=DNS:localhost")
    signed(path, "client", CLIENT_ROLE, nil)
    # The server runs as the postgres user when the suite runs as root; its key must be its own.
    FileUtils.chown("postgres", nil, [path["server.key"], path["server.crt"]]) if Process.uid.zero?
    [path["server.key"], path["client.key"]].each { |key| File.chmod(0o600, key) }
    Certificates.new(dir:, ca: path["ca.crt"], server_cert: path["server.crt"], server_key: path["server.key"],
                     client_cert: path["client.crt"], client_key: path["client.key"], other_ca: path["other_ca.crt"])
  end

  def authority(path, name, common_name)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", path["#{name}.key"], "-out", path["#{name}.crt"], "-days", "2", "-subj", "/CN=#{common_name}")
  end

  def signed(path, name, common_name, extension)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", path["#{name}.key"], "-out", path["#{name}.csr"], "-subj", "/CN=#{common_name}")
    File.write(path["#{name}.ext"], "basicConstraints=CA:FALSE\n#{extension}\n")
    openssl("x509", "-req", "-in", path["#{name}.csr"], "-CA", path["ca.crt"], "-CAkey", path["ca.key"],
            "-CAcreateserial", "-out", path["#{name}.crt"], "-days", "2", "-extfile", path["#{name}.ext"])
  end

  def openssl(*args)
    output, status = Open3.capture2e("openssl", *args)
    raise "openssl #{args.first} failed: #{output}" unless status.success?
  end
end
