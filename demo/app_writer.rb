# frozen_string_literal: true

# The application of the split scenario (demo/split_scenario.rb), writing through the cutover:
#   ruby demo/app_writer.rb CI_CONNECTION_FILE SEC_URL ACKNOWLEDGED_FILE STOP_FILE
# It inserts rows into a ci table through its ci connection (the URL in CI_CONNECTION_FILE, which
# the scenario re-points at the new ci when the cutover returns) and updates a sec table through
# its sec connection (sec stays on main), retrying what the server refuses, as an application
# with retries does. Every write the server acknowledged is logged: "ci ID URL" or "sec KEY".
# Refusals go to standard error.

require "pg"
require_relative "split_scenario"

ci_file, sec_url, acknowledged_path, stop_file = ARGV
acknowledged = File.open(acknowledged_path, "a")
acknowledged.sync = true
ci_table = PG::Connection.quote_ident(SplitScenario::WRITTEN[:ci])
sec_table = PG::Connection.quote_ident(SplitScenario::WRITTEN[:sec])

def refused(kind, key, error)
  sqlstate = error.respond_to?(:result) && error.result ? error.result.error_field(PG::PG_DIAG_SQLSTATE) : "-"
  warn "#{kind} #{key} refused #{sqlstate}: #{error.message.lines.first&.strip}"
end

ci_url = nil
ci = nil
sec = nil
next_id = 1
sec_key = 1
until File.exist?(stop_file)
  current = File.read(ci_file)
  if current != ci_url
    ci&.close
    ci = nil
    ci_url = current
  end
  begin
    ci ||= PG.connect(ci_url)
    ci.exec_params("INSERT INTO #{ci_table} (id, acknowledged_by) VALUES ($1, $2)", [next_id, ci_url])
    acknowledged.puts("ci #{next_id} #{ci_url}")
    next_id += 1
  rescue PG::Error => e
    refused("ci", next_id, e)
    ci = nil if ci.nil? || ci.status != PG::CONNECTION_OK
    sleep 0.005
  end
  begin
    sec ||= PG.connect(sec_url)
    sec.exec_params("UPDATE #{sec_table} SET written = written + 1 WHERE id = $1", [sec_key])
    acknowledged.puts("sec #{sec_key}")
    sec_key = (sec_key % 500) + 1
  rescue PG::Error => e
    refused("sec", sec_key, e)
    sec = nil if sec.nil? || sec.status != PG::CONNECTION_OK
    sleep 0.005
  end
  sleep 0.002
end
