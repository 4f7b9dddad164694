# frozen_string_literal: true

require "pg"

RSpec.describe "TLS on the core's own connections (libpq's sslmode)", :postgres do
  before(:all) do
    skip "needs a cluster of its own with TLS: unset DATABASE_URL" if Clusters.external?
    Batches.configure
    @server = TlsServer.start
    @certs = TlsServer.certificates
    @database = "tls_#{Process.pid}"
    @server.create_database(@database)
    PG.connect(@server.url(@database)) do |c|
      c.exec("CREATE ROLE #{TlsServer::CLIENT_ROLE} LOGIN SUPERUSER")
    end
    SchemaFence::Install.up(@server.url(@database), name: "main", serves: %w[main ci])
  end

  after(:all) { @server&.stop }

  def url(host: "localhost", user: "postgres", **params)
    query = params.map { |key, value| "#{key}=#{URI.encode_www_form_component(value.to_s)}" }.join("&")
    "postgres://#{user}@#{host}:#{@server.port}/#{@database}#{query.empty? ? '' : "?#{query}"}"
  end

  # Opens the runner's connection and reads its row of pg_stat_ssl (the newest session of that
  # application_name: earlier examples' runners may not be collected yet).
  def ssl_of_runner(runner_url, database: "main")
    runner = SchemaFence::Runner.new(url: runner_url, database:)
    runner.fence
    PG.connect(@server.url(@database)) do |c|
      c.exec_params("SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) " \
                    "WHERE a.application_name = $1 AND a.datname = $2 ORDER BY a.backend_start DESC LIMIT 1",
                    ["schema_fence/#{database}/runner", @database]).values
    end
  end

  it "verifies the certificate and its host name with verify-full, and the session is TLS" do
    rows = ssl_of_runner(url(sslmode: "verify-full", sslrootcert: @certs.ca))
    expect(rows.map(&:first)).to eq(["t"])
    expect(rows.first.last).to match(/\ATLSv1\.[23]\z/)
  end

  it "uses TLS under libpq's default, prefer, when the server offers it" do
    expect(ssl_of_runner(url).map(&:first)).to eq(["t"])
  end

  it "connects in plaintext with disable" do
    expect(ssl_of_runner(url(sslmode: "disable")).map(&:first)).to eq(["f"])
  end

  it "checks only the CA with verify-ca, so an address the certificate does not name connects" do
    rows = ssl_of_runner(url(host: "127.0.0.1", sslmode: "verify-ca", sslrootcert: @certs.ca))
    expect(rows.map(&:first)).to eq(["t"])
  end

  it "refuses with verify-full a host name the certificate does not name" do
    runner = SchemaFence::Runner.new(url: url(host: "127.0.0.1", sslmode: "verify-full", sslrootcert: @certs.ca),
                                     database: "main")
    expect { runner.fence }.to raise_error(SchemaFence::ConnectionError) { |e|
      expect(e.message).to include("host=127.0.0.1", "sslmode=verify-full", "certificate verify failed")
      expect(e.message).to match(/IP address mismatch|hostname mismatch/)
    }
  end

  it "refuses a certificate signed by another CA with verify-ca" do
    runner = SchemaFence::Runner.new(url: url(sslmode: "verify-ca", sslrootcert: @certs.other_ca), database: "main")
    expect { runner.fence }.to raise_error(SchemaFence::ConnectionError) { |e|
      expect(e.message).to end_with("(sslmode=verify-ca): error performing TLS handshake: certificate verify " \
                                    "failed: self-signed certificate in certificate chain")
    }
  end

  it "says what to give when verification has no root certificate" do
    runner = SchemaFence::Runner.new(url: url(sslmode: "verify-full", sslrootcert: "/nonexistent/root.crt"),
                                     database: "main")
    expect { runner.fence }.to raise_error(SchemaFence::InvalidArgumentError,
                                           %r{sslrootcert: root certificate file /nonexistent/root.crt cannot be read})
  end

  it "fails with require against a server that does not offer TLS" do
    plain = Clusters.fresh_database("tls_plain")
    runner = SchemaFence::Runner.new(url: "#{plain}?sslmode=require", database: "main")
    expect { runner.fence }.to raise_error(SchemaFence::ConnectionError,
                                           /sslmode=require\): .*server does not support TLS/)
  end

  it "authenticates with a client certificate (sslcert, sslkey), and reports the server's refusal without one" do
    with_cert = url(user: TlsServer::CLIENT_ROLE, sslmode: "verify-full", sslrootcert: @certs.ca,
                    sslcert: @certs.client_cert, sslkey: @certs.client_key)
    expect(ssl_of_runner(with_cert).map(&:first)).to eq(["t"])

    without = SchemaFence::Runner.new(url: url(user: TlsServer::CLIENT_ROLE, sslmode: "require"), database: "main")
    expect { without.fence }.to raise_error(SchemaFence::ConnectionError,
                                            /user=certuser \(sslmode=require\).*requires a valid client certificate/)
  end

  it "refuses a private key others can read, as libpq does" do
    loose = File.join(@certs.dir, "loose.key")
    FileUtils.cp(@certs.client_key, loose)
    File.chmod(0o644, loose)
    runner = SchemaFence::Runner.new(url: url(user: TlsServer::CLIENT_ROLE, sslmode: "require",
                                              sslcert: @certs.client_cert, sslkey: loose), database: "main")
    expect { runner.fence }.to raise_error(SchemaFence::InvalidArgumentError, /has group or world access/)
  end
end
