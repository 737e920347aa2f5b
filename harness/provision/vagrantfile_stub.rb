# pglab's reader of a student's Vagrantfile: a stub of `Vagrant.configure` that records what
# the Vagrantfile configures (machines, boxes, private-network addresses, provisioners) and
# prints it as JSON. The Vagrantfile is real Ruby, so it runs in a real Ruby (loops, string
# interpolation, hashes of machines all work); what this stub cannot evaluate is refused with
# the Vagrantfile's line and what it met, never guessed.
#
# Usage: ruby vagrantfile_stub.rb VAGRANTFILE   (prints one JSON object on stdout)
require 'json'

module PglabStub
  VAGRANTFILE = File.expand_path(ARGV.fetch(0))

  # The Vagrantfile's own line of the innermost frame that is in it.
  def self.line
    loc = caller_locations.find { |l| File.expand_path(l.path.to_s) == VAGRANTFILE }
    loc ? loc.lineno : nil
  end

  class Refused < StandardError; end

  def self.refuse(what)
    raise Refused, what
  end

  # Settings pglab does not use (provider blocks, ssh, synced folders): any call is accepted
  # and returns something that accepts further calls.
  class Ignored
    def method_missing(_name, *_args, **_kw, &blk)
      blk&.call(Ignored.new, Ignored.new)
      Ignored.new
    end

    def respond_to_missing?(*); true; end
  end

  # A provisioner's settings: every `x.name = value` is recorded.
  class Settings
    attr_reader :values

    def initialize
      @values = {}
    end

    def method_missing(name, *args, **_kw)
      key = name.to_s
      if key.end_with?('=') && args.length == 1
        @values[key.chomp('=')] = args[0]
      elsif args.empty? && @values.key?(key)
        @values[key]
      elsif args.empty?
        Ignored.new
      else
        PglabStub.refuse("provisioner setting #{key} called with arguments")
      end
    end

    def respond_to_missing?(*); true; end
  end

  # `config.vm` or a machine's `node.vm`.
  class VM
    attr_reader :record

    def initialize(record, machines = nil)
      @record = record
      @machines = machines
    end

    def box=(v); @record['box'] = v.to_s; end
    def box; @record['box']; end
    def hostname=(v); @record['hostname'] = v.to_s; end
    def hostname; @record['hostname']; end
    def box_version=(v); @record['box_version'] = v.to_s; end

    def define(name, **opts)
      PglabStub.refuse('vm.define inside a machine') if @machines.nil?
      m = @machines.find { |x| x['name'] == name.to_s }
      unless m
        m = { 'name' => name.to_s, 'line' => PglabStub.line, 'box' => nil, 'hostname' => nil,
              'networks' => [], 'provisioners' => [], 'primary' => opts[:primary] ? true : false }
        @machines << m
      end
      yield Machine.new(m) if block_given?
    end

    def network(kind, **opts)
      @record['networks'] << { 'kind' => kind.to_s, 'ip' => opts[:ip]&.to_s,
                               'netmask' => opts[:netmask]&.to_s, 'line' => PglabStub.line }
    end

    def provision(kind, **opts)
      settings = Settings.new
      opts.each { |k, v| settings.values[k.to_s] = v }
      yield settings if block_given?
      @record['provisioners'] << { 'kind' => kind.to_s, 'line' => PglabStub.line,
                                   'settings' => settings.values }
    end

    def provider(*_args)
      yield Ignored.new, Ignored.new if block_given?
    end

    def synced_folder(*_args, **_kw); end

    def method_missing(name, *_args, **_kw)
      key = name.to_s
      # Plain settings pglab does not need (boot_timeout, communicator, ...).
      return nil if key.end_with?('=')

      PglabStub.refuse("vm.#{key}")
    end

    def respond_to_missing?(*); true; end
  end

  class Machine
    def initialize(record)
      @vm = VM.new(record)
    end

    def vm; @vm; end
    def ssh; Ignored.new; end
    def vagrant; Ignored.new; end
    def winrm; Ignored.new; end

    def method_missing(name, *_args)
      PglabStub.refuse("machine setting #{name}")
    end

    def respond_to_missing?(*); true; end
  end

  class Config
    attr_reader :global, :machines

    def initialize
      @global = { 'box' => nil, 'hostname' => nil, 'networks' => [], 'provisioners' => [] }
      @machines = []
      @vm = VM.new(@global, @machines)
    end

    def vm; @vm; end
    def ssh; Ignored.new; end
    def vagrant; Ignored.new; end
    def winrm; Ignored.new; end

    def method_missing(name, *_args)
      PglabStub.refuse("config.#{name}")
    end

    def respond_to_missing?(*); true; end
  end

  CONFIGS = []
end

module Vagrant
  def self.configure(version)
    PglabStub.refuse("Vagrant.configure(#{version.inspect}): only version 2 is read") unless version.to_s == '2'
    config = PglabStub::Config.new
    PglabStub::CONFIGS << config
    yield config
  end

  def self.has_plugin?(*); false; end
  def self.require_version(*); end
  def self.version?(*); true; end
  VERSION = '2.3.4'
end

def pglab_print(obj)
  $stdout.write(JSON.generate(obj))
  $stdout.flush
end

begin
  Dir.chdir(File.dirname(PglabStub::VAGRANTFILE))
  load PglabStub::VAGRANTFILE
  configs = PglabStub::CONFIGS
  if configs.empty?
    pglab_print('error' => 'no Vagrant.configure("2") block', 'line' => nil)
  else
    pglab_print('global' => configs.map(&:global).first,
                'machines' => configs.flat_map(&:machines))
  end
rescue PglabStub::Refused => e
  loc = e.backtrace_locations&.find { |l| File.expand_path(l.path.to_s) == PglabStub::VAGRANTFILE }
  pglab_print('error' => "cannot evaluate #{e.message}", 'line' => loc&.lineno)
rescue ScriptError, StandardError => e
  loc = e.backtrace_locations&.find { |l| File.expand_path(l.path.to_s) == PglabStub::VAGRANTFILE }
  line = loc&.lineno
  line ||= e.message[/:(\d+):/, 1]&.to_i if e.is_a?(SyntaxError)
  pglab_print('error' => "#{e.class}: #{e.message.lines.first.to_s.strip}", 'line' => line)
end
